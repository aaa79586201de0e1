"""Graph -> a ``torch.nn.Module``: the inverse of the PyTorch adapters.

:func:`emit_torch` writes ``class Model(nn.Module)`` whose ``__init__`` declares one
module per layer node (the module path kept: ``layer1.0.conv1`` is registered under
containers ``layer1`` and ``0``), whose ``forward`` follows the graph (residual
sums, concatenations, flatten, pooling, activations as functions where the source
called functions), and ``build_model()``. Shapes are channels-first (NCHW), as
PyTorch's; a graph from Keras is written channels-first too, with its axes moved.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import Optional

from ..graph import Graph, Node, split_ref
from .common import EmitError, Names, canonical_to_source_axis, header, lit, topo_nodes

# activation function -> (module class, functional call)
_ACTS = {
    "relu": ("nn.ReLU", "torch.relu"), "relu6": ("nn.ReLU6", "F.relu6"), "sigmoid": ("nn.Sigmoid", "torch.sigmoid"),
    "tanh": ("nn.Tanh", "torch.tanh"), "gelu": ("nn.GELU", "F.gelu"), "silu": ("nn.SiLU", "F.silu"),
    "swish": ("nn.SiLU", "F.silu"), "elu": ("nn.ELU", "F.elu"), "selu": ("nn.SELU", "F.selu"),
    "softplus": ("nn.Softplus", "F.softplus"), "softsign": ("nn.Softsign", "F.softsign"),
    "mish": ("nn.Mish", "F.mish"), "hard_silu": ("nn.Hardswish", "F.hardswish"),
    "hard_swish": ("nn.Hardswish", "F.hardswish"), "hard_sigmoid": ("nn.Hardsigmoid", "F.hardsigmoid"),
    "leaky_relu": ("nn.LeakyReLU", "F.leaky_relu"), "softmax": ("nn.Softmax", "torch.softmax"),
    "log_softmax": ("nn.LogSoftmax", "torch.log_softmax"), "linear": ("nn.Identity", None),
    "prelu": ("nn.PReLU", None), "log_sigmoid": ("nn.LogSigmoid", "F.logsigmoid"),
    "hard_tanh": ("nn.Hardtanh", "F.hardtanh"), "celu": ("nn.CELU", "F.celu"),
}
_SEGMENT = re.compile(r"^[A-Za-z0-9_]+$")
_MERGE_OPS = {"add": " + ", "subtract": " - ", "multiply": " * "}


def _is_function(node: Node, graph: Graph) -> bool:
    """Write this node as a function call in forward (no module)? A PyTorch source's
    functions (``operator.add``, ``F.relu``, ``torch.flatten``) stay functions; every
    op without state is one in any case where no module would name it better."""
    if node.op in ("add", "subtract", "multiply", "average", "maximum", "minimum", "concat", "rescaling",
                   "reshape", "pad"):
        return True
    if node.op == "global_pool" and not node.attrs.get("keepdims"):
        return True
    if graph.framework == "torch":
        return not node.source_type.startswith("torch.nn.")
    return node.fused_into is not None


def torch_module_names(graph: Graph) -> dict:
    """``{node name: module path}`` of the modules :func:`emit_torch` declares (a
    PyTorch graph's paths kept; other names made of ``[A-Za-z0-9_]`` segments)."""
    out, used, leaves = {}, set(), set()
    for node in graph:
        if _is_function(node, graph) or node.op == "input" or node.shares_params_with:
            continue
        name = node.name.split("@")[0]
        if graph.framework == "torch":
            segs = [s if _SEGMENT.match(s) else re.sub(r"\W", "_", s, flags=re.ASCII) or "m" for s in name.split(".")]
        else:
            segs = [re.sub(r"\W", "_", name, flags=re.ASCII) or "m"]
        path = ".".join(segs)
        # a container path that is a leaf (or the other way round) cannot be: flatten the name
        while path in used or any(p.startswith(path + ".") for p in used) or any(
                path.startswith(p + ".") for p in leaves):
            path = path.replace(".", "_") + "_"
        used.add(path)
        leaves.add(path)
        out[node.name] = path
    return out


def _access(path: str) -> str:
    expr = "self"
    for seg in path.split("."):
        if seg.isidentifier() and not keyword.iskeyword(seg):
            expr += "." + seg
        else:
            expr = f"getattr({expr}, {lit(seg)})"
    return expr


def _tuple_or_int(values):
    values = tuple(int(v) for v in values)
    return values[0] if len(set(values)) == 1 else values


class _TorchWriter:
    def __init__(self, graph: Graph):
        self.g = graph
        self.paths = torch_module_names(graph)
        self.vars = Names(reserved={"self", "model"})
        self.init: list = []
        self.containers: set = set()

    def src_shape(self, ref: str):
        s = self.g.shape_of(ref)
        return None if s is None else self.g.display_shape(s) if self.g.layout == "channels_first" else \
            ((s[0], s[-1], *s[1:-1]) if len(s) >= 3 else s)

    def channels(self, node: Node, i: int = 0) -> int:
        s = self.g.shape_of(node.inputs[i]) if len(node.inputs) > i else None
        if s is None or s[-1] is None:
            raise EmitError(node, "its input's channels are unknown")
        return int(s[-1])

    def rank(self, node: Node) -> int:
        r = node.attrs.get("rank")
        if isinstance(r, int) and not isinstance(r, bool):
            return r
        s = self.g.shape_of(node.inputs[0]) if node.inputs else None
        if s is None:
            raise EmitError(node, "its input shape is unknown")
        return len(s) - 2

    def dim(self, node: Node, axis) -> int:
        s = self.g.shape_of(node.inputs[0]) if node.inputs else None
        if s is None:
            raise EmitError(node, "its input shape is unknown")
        if node.attrs.get("layout") == "features_last" or len(s) < 3:
            return int(axis) % len(s)
        return canonical_to_source_axis(axis, len(s), "channels_first")

    def pads(self, node: Node, r: int, size_key="kernel"):
        """PyTorch padding (an int or tuple) or ("pre", F.pad tuple) for asymmetric padding."""
        a = node.attrs
        pad = a.get("padding", "valid")
        k = a.get(size_key) or (1,) * r
        st = a.get("strides") or (1,) * r
        d = a.get("dilation") or (1,) * r
        k, st, d = (tuple(v) if isinstance(v, (list, tuple)) else (v,) * r for v in (k, st, d))
        if isinstance(pad, str):
            if pad == "valid":
                return 0, None
            if pad == "causal":
                pairs = tuple(((kk - 1) * dd, 0) for kk, dd in zip(k, d))
            elif pad == "same":
                s = self.g.shape_of(node.inputs[0])
                spatial = s[1:-1] if s is not None else (None,) * r
                pairs = []
                for n, kk, ss, dd in zip(spatial, k, st, d):
                    if n is None:
                        raise EmitError(node, "'same' padding on an unknown size")
                    total = max((math.ceil(n / ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0)
                    pairs.append((total // 2, total - total // 2))
                pairs = tuple(pairs)
            else:
                raise EmitError(node, f"padding {pad!r}")
        else:
            pairs = tuple(tuple(int(v) for v in (p if isinstance(p, (list, tuple)) else (p, p))) for p in pad)
        if all(lo == hi for lo, hi in pairs):
            return _tuple_or_int(lo for lo, _ in pairs), None
        flat = []
        for lo, hi in reversed(pairs):       # F.pad takes the last dim first
            flat += [lo, hi]
        return 0, tuple(flat)

    # -- modules ---------------------------------------------------------------------
    def module_expr(self, node: Node) -> tuple:
        """(constructor expression, F.pad tuple to apply first or None)."""
        a, op = node.attrs, node.op
        if op in ("conv", "depthwise_conv", "conv_transpose"):
            r = self.rank(node)
            if r not in (1, 2, 3):
                raise EmitError(node, f"a {r}-D convolution")
            cin = self.channels(node)
            if op == "depthwise_conv":
                cout, groups = cin * int(a.get("depth_multiplier") or 1), cin
            else:
                cout, groups = int(a["filters"]), int(a.get("groups") or 1)
            pad, pre = self.pads(node, r)
            k = _tuple_or_int(a["kernel"])
            args = [lit(cin), lit(cout), lit(k)]
            st = _tuple_or_int(a.get("strides") or (1,) * r)
            if st != 1:
                args.append(f"stride={lit(st)}")
            if op == "conv_transpose":
                if pre is not None:
                    raise EmitError(node, "asymmetric padding of a transposed convolution")
                if a.get("output_padding") is not None and any(a["output_padding"]):
                    args.append(f"output_padding={lit(_tuple_or_int(a['output_padding']))}")
            if pad != 0:
                args.append(f"padding={lit(pad)}")
            dil = _tuple_or_int(a.get("dilation") or (1,) * r)
            if dil != 1:
                args.append(f"dilation={lit(dil)}")
            if groups != 1:
                args.append(f"groups={lit(groups)}")
            if not a.get("use_bias", True):
                args.append("bias=False")
            cls = f"nn.ConvTranspose{r}d" if op == "conv_transpose" else f"nn.Conv{r}d"
            return f"{cls}({', '.join(args)})", pre
        if op == "dense":
            s = self.g.shape_of(node.inputs[0])
            if s is not None and len(s) > 2 and self.g.layout != "channels_first" and \
                    node.attrs.get("layout") != "features_last":
                raise EmitError(node, "a Dense on a channels-last tensor of rank > 2 (PyTorch's Linear reads "
                                      "the last, not the channel, axis)")
            args = [lit(self.channels(node)), lit(int(a["units"]))]
            if not a.get("use_bias", True):
                args.append("bias=False")
            return f"nn.Linear({', '.join(args)})", None
        if op == "batchnorm":
            s = self.g.shape_of(node.inputs[0])
            r = 1 if s is None or len(s) <= 3 else len(s) - 2
            if s is not None and a.get("axis", -1) % len(s) != len(s) - 1:
                raise EmitError(node, "batch normalisation over an axis other than the channels")
            if bool(a.get("center", True)) != bool(a.get("scale", True)):
                raise EmitError(node, "PyTorch's BatchNorm has both or neither of scale and shift")
            args = [lit(self.channels(node))]
            eps = a.get("epsilon")
            if eps is not None and eps != 1e-5:
                args.append(f"eps={lit(float(eps))}")
            mom = a.get("momentum")
            if mom is not None and self.g.framework == "keras":
                mom = 1.0 - float(mom)
            if mom is not None and abs(float(mom) - 0.1) > 1e-12:
                args.append(f"momentum={lit(float(mom))}")
            if not a.get("scale", True):
                args.append("affine=False")
            if a.get("track_running_stats") is False:
                args.append("track_running_stats=False")
            return f"nn.BatchNorm{r}d({', '.join(args)})", None
        if op == "layernorm":
            s = self.src_shape(node.inputs[0])
            axes = a.get("axis", -1)
            axes = sorted(self.dim(node, x) for x in (axes if isinstance(axes, (list, tuple)) else [axes]))
            if s is None or axes != list(range(axes[0], len(s))):
                raise EmitError(node, "a layer norm over axes other than the trailing ones")
            shape = tuple(s[axes[0]:])
            if a.get("rms"):
                return f"nn.RMSNorm({lit(shape)}" + (f", eps={lit(float(a['epsilon']))}" if a.get("epsilon") else "") + ")", None
            args = [lit(shape)]
            if a.get("epsilon") is not None and a["epsilon"] != 1e-5:
                args.append(f"eps={lit(float(a['epsilon']))}")
            if not a.get("scale", True):
                args.append("elementwise_affine=False")
            elif not a.get("center", True):
                args.append("bias=False")
            return f"nn.LayerNorm({', '.join(args)})", None
        if op == "groupnorm":
            args = [lit(a.get("groups")), lit(self.channels(node))]
            if not (a.get("center", True) and a.get("scale", True)):
                args.append("affine=False")
            return f"nn.GroupNorm({', '.join(args)})", None
        if op == "activation":
            fn = a.get("function")
            if fn not in _ACTS:
                raise EmitError(node, f"activation {fn!r} has no PyTorch module")
            cls = _ACTS[fn][0]
            if fn == "leaky_relu":
                slope = a.get("negative_slope", a.get("alpha"))
                return f"{cls}({lit(float(slope)) if slope is not None else ''})", None
            if fn in ("softmax", "log_softmax"):
                return f"{cls}(dim={lit(self.dim(node, a.get('axis', -1)))})", None
            if fn == "elu" and a.get("alpha", 1.0) != 1.0:
                return f"{cls}(alpha={lit(float(a['alpha']))})", None
            if fn == "prelu":
                n = node.params or 1
                return f"{cls}({lit(int(n))})" if n != 1 else f"{cls}()", None
            return f"{cls}()", None
        if op == "dropout":
            variant = a.get("variant", "dropout")
            p = lit(float(a.get("rate") or 0.0))
            if variant == "dropout":
                return f"nn.Dropout({p})", None
            if variant == "spatial":
                return f"nn.Dropout{self.rank(node)}d({p})", None
            if variant == "alpha":
                return f"nn.AlphaDropout({p})", None
            raise EmitError(node, f"dropout variant {variant!r} has no PyTorch module")
        if op in ("pool_max", "pool_avg"):
            r = self.rank(node)
            pad, pre = self.pads(node, r, "pool_size")
            if pre is not None:
                raise EmitError(node, "asymmetric pooling padding has no PyTorch module")
            size = _tuple_or_int(a.get("pool_size") or (2,) * r)
            st = _tuple_or_int(a.get("strides") or a.get("pool_size") or (2,) * r)
            args = [lit(size)] + ([f"stride={lit(st)}"] if st != size else [])
            if pad != 0:
                args.append(f"padding={lit(pad)}")
            if a.get("ceil_mode"):
                args.append("ceil_mode=True")
            if op == "pool_avg" and pad != 0 and self.g.framework == "keras":
                args.append("count_include_pad=False")
            cls = ("nn.MaxPool" if op == "pool_max" else "nn.AvgPool") + f"{r}d"
            return f"{cls}({', '.join(args)})", None
        if op == "global_pool":
            r = self.rank(node)
            mode = a.get("mode", "avg")
            if mode not in ("avg", "max"):
                raise EmitError(node, f"global {mode} pooling")
            return f"nn.Adaptive{'Avg' if mode == 'avg' else 'Max'}Pool{r}d(1)", None
        if op == "flatten":
            return "nn.Flatten()", None
        if op == "embedding":
            return f"nn.Embedding({lit(int(a['input_dim']))}, {lit(int(a['output_dim']))})", None
        if op == "rnn":
            cls = {"lstm": "nn.LSTM", "gru": "nn.GRU", "simple": "nn.RNN"}.get(a.get("cell"))
            if cls is None:
                raise EmitError(node, f"recurrent cell {a.get('cell')!r}")
            s = self.g.shape_of(node.inputs[0])
            if s is None or s[-1] is None:
                raise EmitError(node, "its input's features are unknown")
            args = [lit(int(s[-1])), lit(int(a["units"]))]
            if (a.get("num_layers") or 1) != 1:
                args.append(f"num_layers={lit(int(a['num_layers']))}")
            if not a.get("use_bias", True):
                args.append("bias=False")
            if a.get("batch_first", True):
                args.append("batch_first=True")
            if a.get("dropout"):
                args.append(f"dropout={lit(float(a['dropout']))}")
            if a.get("bidirectional"):
                args.append("bidirectional=True")
            return f"{cls}({', '.join(args)})", None
        if op == "upsample":
            size = _tuple_or_int(a.get("size") or (2,))
            mode = a.get("interpolation", "nearest")
            return f"nn.Upsample(scale_factor={lit(size)}, mode={lit(mode)})", None
        if op == "identity":
            return "nn.Identity()", None
        if op == "unknown":
            raise EmitError(node, "modellint does not know this layer, so cannot write it")
        raise EmitError(node, "no PyTorch module is written for this op yet")

    # -- functions -------------------------------------------------------------------
    def function_expr(self, node: Node, ins: list) -> str:
        a, op = node.attrs, node.op
        if op in _MERGE_OPS:
            return _MERGE_OPS[op].join(ins)
        if op == "average":
            return f"({' + '.join(ins)}) / {len(ins)}"
        if op in ("maximum", "minimum"):
            expr = ins[0]
            for other in ins[1:]:
                expr = f"torch.{op}({expr}, {other})"
            return expr
        if op == "concat":
            return f"torch.cat([{', '.join(ins)}], dim={lit(self.dim(node, a.get('axis', -1)))})"
        if op == "rescaling":
            scale, off = a.get("scale"), a.get("offset") or 0.0
            if not isinstance(scale, (int, float)) or isinstance(scale, bool):
                raise EmitError(node, "its scale is not one number")
            expr = f"{ins[0]} * {lit(float(scale))}"
            return expr + (f" + {lit(float(off))}" if off else "")
        if op == "flatten":
            return f"torch.flatten({ins[0]}, 1)"
        if op == "global_pool":
            r = self.rank(node)
            s = self.g.shape_of(node.inputs[0])
            dims = tuple(range(2, 2 + r)) if node.attrs.get("layout") != "features_last" else \
                tuple(range(1, len(s) - 1))
            fn = "torch.mean" if a.get("mode", "avg") == "avg" else "torch.amax"
            keep = ", keepdim=True" if a.get("keepdims") else ""
            return f"{fn}({ins[0]}, dim={lit(dims)}{keep})"
        if op == "reshape":
            src_in = self.src_shape(node.inputs[0])
            src_out = self.g.display_shape(node.output_shape) if node.output_shape is not None else None
            if src_in is None or src_out is None or any(d is None for d in (*src_in[1:], *src_out[1:])) or \
                    math.prod(src_in[1:]) != math.prod(src_out[1:]):
                raise EmitError(node, "a reshape (or indexing) whose sizes do not match")
            return f"{ins[0]}.reshape({ins[0]}.shape[0], {', '.join(lit(int(d)) for d in src_out[1:])})"
        if op == "pad":
            pairs = a.get("padding")
            flat = []
            for lo, hi in reversed(tuple(tuple(p) for p in pairs)):
                flat += [int(lo), int(hi)]
            return f"F.pad({ins[0]}, {lit(tuple(flat))})"
        if op == "activation":
            fn = a.get("function")
            call = _ACTS.get(fn, (None, None))[1]
            if fn == "linear":
                return ins[0]
            if call is None:
                raise EmitError(node, f"activation {fn!r} has no PyTorch function")
            if fn in ("softmax", "log_softmax"):
                return f"{call}({ins[0]}, dim={lit(self.dim(node, a.get('axis', -1)))})"
            if fn == "leaky_relu" and a.get("negative_slope") is not None:
                return f"{call}({ins[0]}, {lit(float(a['negative_slope']))})"
            return f"{call}({ins[0]})"
        if op == "dropout":
            return f"F.dropout({ins[0]}, {lit(float(a.get('rate') or 0.0))}, self.training)"
        raise EmitError(node, "no PyTorch function is written for this op yet")

    # -- the module ------------------------------------------------------------------------
    def declare(self, path: str, expr: str):
        parts = path.split(".")
        for i in range(1, len(parts)):
            c = ".".join(parts[:i])
            if c not in self.containers:
                self.containers.add(c)
                self.init.append(self._assign(c, "nn.Module()") + "  # a container")
        self.init.append(self._assign(path, expr))

    def _assign(self, path: str, expr: str) -> str:
        parent, _, last = path.rpartition(".")
        owner = _access(parent) if parent else "self"
        if last.isidentifier() and not keyword.iskeyword(last):
            return f"{owner}.{last} = {expr}"
        return f"{owner}.add_module({lit(last)}, {expr})"

    def write(self, weights_file: Optional[str] = None, fresh=()) -> str:
        forward = []
        order = topo_nodes(self.g)
        args = []
        outs_of: dict = {}
        for node in order:
            if node.op == "input":
                v = self.vars(node.name)
                args.append(v)
                continue
            ins = [self.ref(r) for r in node.inputs]
            v = self.vars(node.name)
            if node.shares_params_with:
                first = self.g.nodes.get(node.shares_params_with)
                if first is None or first.name not in self.paths:
                    raise EmitError(node, "a shared layer whose first call is not a module")
                forward.append(f"{v} = {_access(self.paths[first.name])}({', '.join(ins)})")
                continue
            if _is_function(node, self.g):
                forward.append(f"{v} = {self.function_expr(node, ins)}")
                continue
            expr, pre = self.module_expr(node)
            self.declare(self.paths[node.name], expr)
            if pre is not None:
                forward.append(f"{ins[0]}_padded = F.pad({ins[0]}, {lit(pre)})")
                ins = [f"{ins[0]}_padded"]
            call = f"{_access(self.paths[node.name])}({', '.join(ins)})"
            if node.op == "rnn" and not node.attrs.get("return_sequences", True) and len(node.output_shapes) == 1:
                call += "[0][:, -1]"        # a Keras LSTM without return_sequences: the last step
            forward.append(f"{v} = {call}")
            outs_of[node.name] = len(node.output_shapes)
        outs = [self.ref(r) for r in self.g.outputs]
        if not outs:
            raise EmitError(None, "the graph has no outputs")
        forward.append("return " + (outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"))
        lines = [header(self.g, "A PyTorch module"), "import torch",
                 "import torch.nn.functional as F", "from torch import nn", "",
                 "#: The state_dict file written beside this one (None: no weights were kept).",
                 f"WEIGHTS_FILE = {lit(weights_file)}",
                 "#: Modules whose weights are not in it: they start freshly initialised.",
                 f"FRESH_LAYERS = {lit(tuple(fresh))}", "", "", "class Model(nn.Module):",
                 "    def __init__(self):", "        super().__init__()"]
        lines += ["        " + x for x in self.init] or ["        pass"]
        lines += ["", f"    def forward(self, {', '.join(args)}):"]
        lines += ["        " + x for x in forward]
        shapes = [self.src_shape(n) for n in self.g.inputs]
        dtypes = [", dtype=torch.long" if str(self.g.nodes[n].attrs.get("dtype", "")).startswith(("int", "uint"))
                  else "" for n in self.g.inputs]
        example = ", ".join(f"torch.zeros({', '.join(str(1 if d is None else int(d)) for d in s)}{dt})"
                            if s is not None else "None" for s, dt in zip(shapes, dtypes))
        lines += ["", "", "def build_model(weights=None):",
                  '    """The model, freshly initialised; ``weights``: a state_dict file (``WEIGHTS_FILE``) loaded',
                  "    with torch.load(weights_only=True) and load_state_dict(strict=False). Only FRESH_LAYERS",
                  '    may be missing from it; anything else missing or left over is an error."""',
                  "    model = Model()",
                  "    if weights is not None:",
                  '        state = torch.load(weights, map_location="cpu", weights_only=True)',
                  "        result = model.load_state_dict(state, strict=False)",
                  "        missing = [k for k in result.missing_keys",
                  '                   if not any(k.startswith(m + ".") for m in FRESH_LAYERS)]',
                  "        if missing or result.unexpected_keys:",
                  '            raise ValueError(f"{weights}: not this model\'s weights (missing {missing[:5]}, "',
                  '                             f"unexpected {result.unexpected_keys[:5]})")',
                  "    return model", "",
                  f"INPUT_SHAPES = {lit([tuple(1 if d is None else int(d) for d in s) for s in shapes if s is not None])}",
                  "", "", 'if __name__ == "__main__":',
                  f"    print(build_model().eval()({example}).shape)", ""]
        return "\n".join(lines)

    def ref(self, ref: str) -> str:
        name, idx = split_ref(ref)
        node = self.g.nodes[name]
        v = self.vars(name)
        if node.op == "rnn" and len(node.output_shapes) > 1:
            return f"{v}[0]" if idx == 0 else f"{v}[1][{idx - 1}]" if node.attrs.get("cell") == "lstm" else f"{v}[1]"
        if len(node.output_shapes) > 1:
            return f"{v}[{idx}]"
        return v


def emit_torch(graph: Graph, weights: Optional[dict] = None, *, weights_file: Optional[str] = None,
               fresh=()) -> str:
    """Python source of a ``torch.nn.Module`` (``class Model``, ``build_model(weights=None)``)
    that computes ``graph``. ``weights_file`` names the state_dict file written beside it
    (``WEIGHTS_FILE``), ``fresh`` the module paths it does not hold (``FRESH_LAYERS``);
    ``build_model(path)`` loads such a file. ``weights`` only adds a comment. Raises
    :class:`EmitError` for a node it cannot write."""
    src = _TorchWriter(graph).write(weights_file, fresh)
    if weights is not None:
        names = torch_module_names(graph)
        kept = [n for n in weights if n in names and names[n] not in set(fresh)]
        first = src.index('"""\n', 3) + 4
        where = f"in {weights_file}: build_model({weights_file!r})" if weights_file else "load them with load_state_dict"
        src = src[:first] + (f"# Weights: {len(kept)} module(s) keep the source model's weights "
                             f"({where}); the rest start freshly initialised.\n") + src[first:]
    return src


def build_torch(graph: Graph, weights: Optional[dict] = None):
    """The ``nn.Module`` of :func:`emit_torch`'s code (modellint's own, never a file's),
    with ``weights`` (``{node: {state_dict name: array}}``) loaded into their modules."""
    import torch

    source = emit_torch(graph)
    namespace: dict = {"__name__": "modellint_emitted"}
    exec(compile(source, "<modellint emit_torch>", "exec"), namespace)   # our own generated code
    model = namespace["build_model"]()
    if weights:
        names = torch_module_names(graph)
        for node_name, arrays in weights.items():
            if node_name not in names or not arrays:
                continue
            module = model.get_submodule(names[node_name])
            own = module.state_dict()
            state = {}
            for key, arr in arrays.items():
                if key not in own:
                    raise ValueError(f"module {node_name!r} has no weight {key!r}")
                t = torch.as_tensor(arr)
                if tuple(t.shape) != tuple(own[key].shape):
                    raise ValueError(f"module {node_name!r}: weight {key!r} is {tuple(t.shape)}, the module's is "
                                     f"{tuple(own[key].shape)}")
                state[key] = t.to(own[key].dtype)
            module.load_state_dict(state, strict=False)
    return model
