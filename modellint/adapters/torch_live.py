"""PyTorch -> Graph: live ``nn.Module`` objects, exported programs (``.pt2``) and
TorchScript modules.

Live modules (:func:`graph_from_module`) are captured, in this order, with

1. ``torch.fx.symbolic_trace`` with leaf modules kept whole, shapes propagated on
   meta tensors (shape and dtype, no storage): the light capture, first because
   it meets the issue's budget where ``torch.export`` cannot (below);
2. ``torch.export.export`` (non-strict): the ATen ops of one forward pass, each
   tagged with the module call it came from (``nn_module_stack``), for what fx
   cannot trace (Python control flow on shapes, ``range(x.shape[1])``, ...);
3. forward hooks on every module plus a ``TorchFunctionMode`` that records the
   functions called between leaf modules, on fake tensors, and only if that fails
   (data-dependent control flow such as ``if x.sum() > 0``) on a real, random,
   seeded input under ``torch.no_grad()``.

The first that works wins; ``graph.notes`` says which and why the earlier ones
failed; ``capture=`` forces one. Why fx first: torch.export, fake tensors and
even ATen ops run on meta tensors import torch's symbolic-shape and dynamo stack
(sympy, ``torch._dynamo``) on first use: about 1.5-3 s of CPU and 75-110 MiB,
as much memory as the activations of a real ResNet-50 forward pass at batch 1
and 224x224 (~107 MiB with autograd). So the fx capture sizes the usual layers
and functions (convolutions, linear, norms, activations, pools, element-wise
arithmetic, ``cat``, ``mean``) with torch's output-size formulas and makes an
empty meta tensor of that size; other calls run on the meta tensors as they are
(views, reshapes and ``size()`` import nothing; a rarer op such as
``F.interpolate`` pays the import where it occurs); a module with weights and no
shape rule (``nn.LSTM``, ``nn.MultiheadAttention``, a leaf recognised by its base
class) runs with empty meta tensors standing in for its weights
(``torch.func.functional_call``), and only one that fails there makes the capture
run the traced graph on fake tensors instead. A ResNet-50
is read this way in a fraction of a second, adding a few MiB; no activation and
no copy of a weight is ever allocated. torch.export and the hooks capture also
trace with fake tensors (``torch._subclasses.FakeTensorMode``): no real
activation either. The module is put in eval mode for the capture and every
submodule's own ``training`` flag is restored afterwards; its parameters and
buffers are never written.

The graph has one node per leaf-module call, named by the module path users
know (``layer1.0.conv1``; a module called again gives ``layer1.0.relu@1`` with
``shares_params_with``), and one node per function between leaf modules, named
by its scope and function (``layer1.0.add``, ``flatten``). A leaf module is a
``torch.nn`` module in :data:`~.torch_ops.MODULES` or any module without
children. Pass-through calls (``contiguous``, ``clone``, ``to``...) make no node.

Parameters are counted per leaf module from the module itself (``requires_grad``
decides trainable); parameters used directly by functions are counted on the
first node that reads them; every tensor is counted once (tied weights too).
BatchNorm's ``running_mean`` / ``running_var`` buffers count as non-trainable
parameters, as Keras counts ``moving_mean`` / ``moving_variance``;
``num_batches_tracked`` is a step counter, not a weight, and other buffers
(constant tables, masks) are not counted.

Shapes are stored channels-last (``graph.layout == "channels_first"`` remembers
PyTorch's NCHW, and :meth:`Graph.display_shape` prints it); a tensor's first
dimension becomes ``None`` (the batch) when it equals the example batch size.
"""

from __future__ import annotations

import contextlib
import io
import logging
import operator
import re
import warnings
import weakref
from typing import Optional

from .. import ops
from ..errors import InputError
from ..graph import FeaturesLast, Graph, Node
from . import torch_ops as T
from .common import infer_node
from .torch_ops import Call, TArg, _flat

STAT_BUFFERS = ("running_mean", "running_var")
_ROOT = "modellint_root"
LAYOUT = "channels_first"
CAPTURES = ("export", "fx", "hooks")
AUTO = ("fx", "export", "hooks")  # capture="auto": the light capture first (see graph_from_module)


# ---------------------------------------------------------------------------
# the graph builder every capture feeds
# ---------------------------------------------------------------------------

class _Builder:
    """Turns module and function calls (arguments as :class:`TArg`) into nodes.

    ``infer=False``: output shapes come with each call (traced). ``infer=True``
    (TorchScript): they are inferred from the op table.

    Layouts are decided per tensor (:class:`~.torch_ops.Layout`): a tensor is
    channels first (a conv feature map ``(N, C, ...)``: made by or fed to a conv,
    pool, BatchNorm, upsampling...) or features last (``(N, T, F)``: made by or fed
    to ``nn.Linear``, ``nn.Embedding``, an RNN, attention, a ``LayerNorm`` over the
    last dim; or an NHWC tensor permuted from a feature map). Element-wise and
    shape-only ops pass their input's along; a tensor nothing decides (an input
    only reshaped) is channels first. Nodes hold source shapes until
    :meth:`finish`, which makes them canonical: a channels-first shape moves dim 1
    last, a features-last one stays as it is (:class:`~modellint.graph.FeaturesLast`,
    ``attrs["layout"] == "features_last"``).
    """

    def __init__(self, graph: Graph, batch: Optional[int], *, infer: bool = False, reserved=()):
        self.g = graph
        self.batch = batch
        self.infer = infer
        self.reserved = set(reserved)
        self.claimed: set = set()
        self.calls: dict = {}  # module path -> calls so far
        self.first: dict = {}  # module path -> node name of its first call
        self.lays: dict = {}  # node name -> [Layout per output]
        self.reads: dict = {}  # node name -> (reader, input activations, the layouts the reader saw)
        self.scopes: dict = {}  # function node name -> the module path it ran in
        self.traced: dict = {}  # module path traced through -> (qualname, calls or None, holds weights)

    # -- shapes -----------------------------------------------------------
    def batched(self, shape):
        """A traced shape with the example batch size as None (still in the source layout)."""
        if shape is None:
            return None
        shape = tuple(None if d is None else int(d) for d in shape)
        if shape and self.batch is not None and shape[0] == self.batch:
            shape = (None, *shape[1:])
        return shape

    def canon(self, shape, lay=None):
        """A source shape as stored: features-last ones as they are, others channels-last."""
        shape = self.batched(shape)
        if shape is not None and len(shape) >= 3 and lay is not None and lay.value == T.FL:
            return FeaturesLast(shape)
        return ops.to_canonical(shape, LAYOUT)

    def unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.g.nodes:
            i += 1
            name = f"{base}_{i}"
        return name

    # -- nodes ------------------------------------------------------------
    def add_input(self, name: str, shape, dtype: str) -> TArg:
        name = name if name not in self.reserved else f"input_{name}"
        node = Node(name=self.unique(name), op="input", source_type="torch.Tensor", attrs={"dtype": dtype},
                    output_shapes=[self.batched(shape)])
        self.g.add(node)
        self.g.inputs.append(node.name)
        lay = T.Layout(T.FL if shape is not None and len(shape) < 3 else None)  # decided by what reads it
        self.lays[node.name] = [lay]
        return TArg("act", shape, ref=node.name, lay=lay)

    def module_call(self, path: str, module, qualname: str, args, kwargs, out_shapes, params, inner=None) -> list:
        live = module is not None and not _is_script(module)
        key = T.module_key(module) if live else T.key_from_qualname(qualname)
        how = None
        if key is None and live:
            key, how = T.recognise(module)
        if key in T.PASS_MODULES and how is None:  # nn.Identity: no node (torch.export leaves no trace of it either)
            acts = [t for t in _flat((args, kwargs)) if isinstance(t, TArg) and t.kind == "act"]
            if acts:
                return acts[:1]
        k = self.calls.get(path, 0)
        self.calls[path] = k + 1
        base = path or T.source_type(qualname).rsplit(".", 1)[-1]
        name = self.unique(base if k == 0 else f"{base}@{k}")
        call = Call(key or qualname, dialect="module", args=args, kwargs=kwargs, module=module, out_shapes=out_shapes)
        T.constrain_inputs(call, key=T.layout_key(key, how), module=module, inner=inner)

        def read():
            notes = []
            op, attrs = "unknown", {}
            if key is not None and module is not None and how is not None:
                try:
                    op, attrs = T.read_recognised(key, how, module, call)
                except Exception as exc:  # not what its base class / name says: unknown
                    what = f"torch.nn.{key} (its base class)" if how == "base" else key
                    notes.append(f"read as {what}, but {_one_line(exc).split(': ', 1)[-1]}")
            elif key is not None and module is not None:
                try:
                    op, attrs = T.read_module(key, module, call)
                except Exception as exc:  # a traced TorchScript module keeps no attributes, ...
                    notes.append(f"module attributes unreadable ({_one_line(exc)})")
            if op == "unknown" and inner:
                op, attrs = _principal(inner)
            if op == "unknown":
                attrs.setdefault("kind", "custom" if key is None or how is not None else "unread")
                known = "modellint does not know this module" if key is None else "no canonical op for this call"
                shape = "shape unknown past it" if self.infer else "shape from the trace"
                notes.append(f"{T.source_type(qualname)}: {known}; {shape}, parameters from the module")
            return op, attrs, notes

        op, attrs, notes = read()
        node = Node(name=name, op=op, source_type=T.source_type(qualname), attrs=attrs, notes=notes)
        if k:
            node.shares_params_with = self.first.get(path)
        else:
            self.first[path] = name
        return self._finish(node, call, params if not k else [], dedupe=True, read=read)

    def function_call(self, fname: str, raw: str, dialect: str, args, kwargs, out_shapes, scope: str,
                      source_type: str) -> list:
        call = Call(fname, dialect=dialect, args=args, kwargs=kwargs, out_shapes=out_shapes)
        T.constrain_inputs(call)

        def read():
            notes = []
            try:
                op, attrs = T.read_function(call)
            except Exception as exc:
                op, attrs = "unknown", {"function": fname}
                notes.append(f"{raw}: not mapped ({_one_line(exc)})")
            if op == "unknown" and not notes:
                notes.append(f"{raw}: a function modellint does not know")
            return op, attrs, notes

        op, attrs, notes = read()
        shown = T.DISPLAY.get(fname, fname)
        base = f"{scope}.{shown}" if scope else shown
        node = Node(name=self.unique(base), op=op, source_type=source_type, attrs=attrs, notes=notes)
        self.scopes[node.name] = scope
        return self._finish(node, call, call.tensors("param"), read=read)

    def _finish(self, node: Node, call: Call, params, dedupe: bool = False, read=None) -> list:
        acts = call.tensors("act")
        if dedupe:  # a module called as m(x, x, x) reads one tensor (self-attention)
            seen: set = set()
            acts = [t for t in acts if not (t.ref in seen or seen.add(t.ref))]
        refs = [t.ref for t in acts]
        if node.op == "attention" and len(refs) == 3:  # torch (query, key, value) -> canonical (query, value, key)
            refs = [refs[0], refs[2], refs[1]]
            acts = [acts[0], acts[2], acts[1]]
        node.inputs = refs
        self._seen_attrs(node, acts)
        if self.infer:
            sources = self._infer_sources(node, acts)
        else:
            sources = [self.batched(s) for s in (call.out_shapes or [])]
        node.output_shapes = sources  # source layout until finish()
        total = trainable = 0
        for p in (q for t in params for q in t.params()):
            if not p.counted or p.key in self.claimed:
                continue
            self.claimed.add(p.key)
            total += p.numel
            trainable += p.numel if p.trainable else 0
        node.params, node.trainable_params = total, trainable
        self.g.add(node)
        lays = _out_layouts(node, call, acts, sources)
        self.lays[node.name] = lays
        if read is not None:
            self.reads[node.name] = (read, acts, _seen(acts))
        n = max(len(sources), 1)
        out = []
        for i in range(n):
            shape = sources[i] if i < len(sources) else None
            src = call.out_shapes[i] if (not self.infer and call.out_shapes and i < len(call.out_shapes)) else shape
            out.append(TArg("act", src, ref=node.name if i == 0 else f"{node.name}:{i}",
                            lay=lays[i] if i < len(lays) else T.Layout()))
        return out

    def _seen_attrs(self, node: Node, acts: list) -> None:
        """What the capture saw that the module does not say: which input axis holds the example batch."""
        if node.op == "rnn" and acts and acts[0].shape is not None and len(acts[0].shape) == 3:
            shape = acts[0].shape
            at = [i for i in (0, 1) if self.batch is not None and shape[i] == self.batch]
            node.attrs["input_batch_axis"] = at[0] if len(at) == 1 else None

    def _infer_sources(self, node: Node, acts: list) -> list:
        """Output shapes (source layout) from the op table, each input as it is stored."""
        in_shapes = [self.canon(t.shape, t.lay) for t in acts]
        fl = bool(acts) and acts[0].lay is not None and acts[0].lay.value == T.FL
        if fl:
            node.attrs["layout"] = T.FL  # the op's outputs as it computes them, features last
        try:
            infer_node(node, in_shapes, LAYOUT)
        finally:
            if fl:
                node.attrs.pop("layout", None)
        return [None if s is None else tuple(ops.to_source(s, LAYOUT)) for s in node.output_shapes]

    def finish(self, outputs) -> Graph:
        self.g.outputs = [t.ref for t in _flat(outputs) if isinstance(t, TArg) and t.kind == "act" and t.ref]
        for lays in self.lays.values():  # what nothing decided is channels first
            for lay in lays:
                lay.resolve(T.CF)
        for name, (read, acts, seen) in self.reads.items():  # a reader that guessed an input's layout wrong
            node = self.g.nodes.get(name)
            if node is not None and _seen(acts) != seen:
                node.op, node.attrs, node.notes = read()
                self._seen_attrs(node, acts)
        for name, node in self.g.nodes.items():
            lays = self.lays.get(name, [])
            shapes = []
            for i, s in enumerate(node.output_shapes):
                lay = lays[i] if i < len(lays) else None
                shapes.append(self.canon(s, lay))
            node.output_shapes = shapes
            if any(isinstance(s, FeaturesLast) for s in shapes):
                node.attrs["layout"] = T.FL
        self.adopt()
        return self.g

    def adopt(self) -> None:
        """A module traced through whose every call ran one function (timm's ``Sigmoid``,
        ``LayerScale``: ``x * self.gamma``) becomes that function's node under the module's
        path and class (``blocks.0.ls1``, a ``scale``); one whose calls ran several keeps
        them, named by its path (``blocks.0.act.mul``...)."""
        renames: dict = {}
        for path, (qualname, calls, weights) in self.traced.items():
            inside = [n for n, sc in self.scopes.items() if n in self.g.nodes
                      and (sc == path or sc.startswith(path + "."))]
            if not inside or any(self.scopes[n] != path for n in inside) or len(inside) != (calls or 1):
                continue
            names = [path if i == 0 else f"{path}@{i}" for i in range(len(inside))]
            if any(n in self.g.nodes and n not in inside for n in names):
                continue
            for i, (old, new) in enumerate(zip(inside, names)):
                renames[old] = new
                node = self.g.nodes[old]
                node.source_type = T.source_type(qualname)
                if i and weights:
                    node.shares_params_with = names[0]
        if not renames:
            return
        from ..graph import split_ref

        def ref(r):
            name, idx = split_ref(r)
            new = renames.get(name, name)
            return new if not idx and ":" not in r else f"{new}:{idx}"

        nodes = {}
        for name, node in self.g.nodes.items():
            node.name = renames.get(name, name)
            node.inputs = [ref(r) for r in node.inputs]
            if node.shares_params_with in renames:
                node.shares_params_with = renames[node.shares_params_with]
            nodes[node.name] = node
        self.g.nodes = nodes
        self.g.outputs = [ref(r) for r in self.g.outputs]
        for cache in ("_consumers", "_fl_shapes"):
            self.g.__dict__.pop(cache, None)

    def trace_through(self, live: dict, calls: Optional[dict] = None) -> None:
        """Note the modules without children the capture traced through (``calls``: path -> how
        many times each was called, where the capture counts them)."""
        for path, m in live.items():
            if path and _traced_through(m):
                self.traced[path] = (_qualname(m), (calls or {}).get(path), next(m.parameters(), None) is not None)


def _seen(acts) -> list:
    return [T.FL if t.lay is not None and t.lay.value == T.FL else T.CF for t in acts]


def _out_layouts(node: Node, call: Call, acts: list, sources: list) -> list:
    """The :class:`~.torch_ops.Layout` of each output of a node, linked to its inputs'."""
    first = acts[0] if acts else None
    out = []
    for shape in sources:
        if shape is None or len(shape) < 3:
            out.append(T.Layout(T.FL))  # (N, F): one layout either way
            continue
        lay = T.Layout()
        decided = T.output_layout(node.op, call)
        same = [t for t in acts if t.lay is not None and t.shape is not None and len(t.shape) == len(shape)]
        if decided is not None:
            lay.resolve(decided)
        elif call.name in T.PERMUTES and first is not None and first.lay is not None:
            try:
                T.link(first.lay, lay, T.permuted(T.permutation(call), len(shape)))
            except Exception:
                pass
        elif node.op in ("permute", "transpose") and first is not None and first.lay is not None:
            dims = node.attrs.get("dims") or ()  # a module that permutes (torchvision's Permute)
            dims = list(dims) if node.op == "transpose" else [0, *dims]
            if sorted(dims) == list(range(len(shape))):
                T.link(first.lay, lay, T.permuted(dims, len(shape)))
        elif same and (node.op in T.KEEPS_LAYOUT or any(tuple(t.shape) == tuple(shape) for t in same)):
            for t in same:
                T.link(t.lay, lay, T.SAME)
        elif first is not None and first.lay is not None and first.lay.value is not None and first.shape \
                and len(first.shape) >= 3:
            lay.resolve(T.reshaped(first.shape, first.lay.value, shape))
        elif same:
            T.link(same[0].lay, lay, T.SAME)
        out.append(lay)
    return out


def _principal(inner: list) -> tuple:
    """(op, attrs) of a leaf module read from its ATen ops (no module attributes)."""
    for call in inner:
        if call.name in T.PRINCIPAL:
            try:
                return T.read_function(call)
            except Exception:
                break
    mapped = [c for c in inner if c.name in T.FUNCTIONS]
    if len(mapped) == 1:
        try:
            return T.read_function(mapped[0])
        except Exception:
            pass
    return "unknown", {}


def _one_line(exc) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _is_script(module) -> bool:
    import torch

    return isinstance(module, torch.jit.ScriptModule)


def _is_leaf(module, root: bool = False) -> bool:
    """One node per call: a torch.nn layer, a module recognised by its base class or name
    (:func:`~.torch_ops.recognise`), or a module without children that torch.fx cannot
    trace (its calls are then one ``unknown`` node). Other modules without children are
    traced through, their functions read one by one (see :meth:`_Builder.adopt`)."""
    cls = type(module)
    if cls.__name__ in T.CONTAINERS and (cls.__module__ or "").startswith("torch.nn"):
        return False
    if T.module_key(module) is not None:
        return True
    if root:
        return False
    if next(iter(module.children()), None) is not None:
        return False
    if T.recognise(module)[0] is not None:
        return True
    return not _traceable(module)


def _traced_through(module) -> bool:
    """A module without children that is no leaf: its functions are the graph's."""
    return next(iter(module.children()), None) is None and not _is_leaf(module)


_TRACEABLE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _traceable(module) -> bool:
    """Can torch.fx trace this module's forward on its own (no data-dependent Python)?"""
    try:
        return _TRACEABLE[module]
    except (KeyError, TypeError):
        pass
    import torch.fx

    try:
        with _quiet():
            torch.fx.Tracer().trace(module)
        ok = True
    except Exception:  # data-dependent control flow, an untraceable builtin, ...
        ok = False
    try:
        _TRACEABLE[module] = ok
    except TypeError:
        pass
    return ok


def _qualname(module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _param_arg(name: str, tensor, *, key, is_param: bool) -> TArg:
    stat = name.rsplit(".", 1)[-1] in STAT_BUFFERS
    return TArg("param", tuple(tensor.shape), name=name, key=key, numel=int(tensor.numel()),
                trainable=bool(is_param and tensor.requires_grad), counted=is_param or stat)


def _module_params(module, path: str, by_fqn: bool = False) -> list:
    """Parameters (all, recursively: a leaf like MultiheadAttention owns ``out_proj``) and running statistics."""
    out = []
    prefix = f"{path}." if path else ""
    for name, p in module.named_parameters():
        out.append(_param_arg(prefix + name, p, key=prefix + name if by_fqn else id(p), is_param=True))
    for name, b in module.named_buffers():
        if b is not None and name.rsplit(".", 1)[-1] in STAT_BUFFERS:
            out.append(_param_arg(prefix + name, b, key=prefix + name if by_fqn else id(b), is_param=False))
    return out


def _passed(args, acts):
    """What a pass-through (``contiguous``, ``float``, ``type_as(other)``) returns: the tensor
    it is called on (a parameter stays one: ``self.scale.type_as(x)`` is the parameter)."""
    first = args[0] if args else None
    if isinstance(first, TArg) and first.kind in ("act", "param"):
        return first
    return acts[0] if acts else None


def _derived(args, shape, fname: str) -> TArg:
    """The value of a call that reads no activation: a constant, or a parameter
    in another form (``self.cls_token.expand(...)``), whose weights the consumer counts."""
    params = [] if fname in T.CONSTANT_MAKERS else \
        [t for t in _flat(args) if isinstance(t, TArg) and t.kind == "param"]
    if not params:
        return TArg("const", shape)
    first = params[0]
    return TArg("param", shape, name=first.name, key=first.key, numel=first.numel, trainable=first.trainable,
                counted=first.counted, extra=[*first.extra, *params[1:]])


def _shapes(value) -> list:
    """Shapes of the tensors in a (nested) value, in order."""
    import torch

    return [tuple(d if isinstance(d, int) else None for d in t.shape)  # a dynamic (symbolic) size: None
            for t in _flat(value) if isinstance(t, torch.Tensor)]


def _dtype(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _prune(graph: Graph) -> int:
    """Drop nodes that reach no output (hooks capture records every top-level call)."""
    from ..graph import split_ref

    live = set(graph.inputs)
    stack = [split_ref(r)[0] for r in graph.outputs]
    while stack:
        n = stack.pop()
        if n in live or n not in graph.nodes:
            continue
        live.add(n)
        stack.extend(split_ref(r)[0] for r in graph.nodes[n].inputs)
    dead = [n for n in graph.nodes if n not in live and graph.nodes[n].params == 0]
    for n in dead:
        del graph.nodes[n]
    return len(dead)


# ---------------------------------------------------------------------------
# the ledger: weights the model holds that no node reads
# ---------------------------------------------------------------------------

def _held_by_module(module) -> list:
    """``[(name, key, numel, trainable)]``: every weight a live module holds, each tensor once
    (parameters, then BatchNorm's running statistics), keyed as the captures key them (``id``)."""
    out, seen = [], set()
    for name, p in module.named_parameters():
        seen.add(id(p))
        out.append((name, id(p), int(p.numel()), bool(p.requires_grad)))
    for name, b in module.named_buffers():
        if b is not None and name.rsplit(".", 1)[-1] in STAT_BUFFERS and id(b) not in seen:
            seen.add(id(b))
            out.append((name, id(b), int(b.numel()), False))
    return out


def _held_by_fqn(module) -> list:
    """:func:`_held_by_module` keyed by qualified name (TorchScript modules)."""
    return [(name, name, numel, trainable) for name, _, numel, trainable in _held_by_module(module)]


def _held_by_program(ep) -> list:
    """The weights of an ExportedProgram: its parameters and running statistics, keyed by name."""
    sig = ep.graph_signature
    state = ep.state_dict
    out = []
    for name in sig.parameters:
        t = state.get(name)
        if t is not None:
            out.append((name, name, int(t.numel()), bool(getattr(t, "requires_grad", True))))
    for name in sig.buffers:
        t = state.get(name)
        if t is not None and name.rsplit(".", 1)[-1] in STAT_BUFFERS:
            out.append((name, name, int(t.numel()), False))
    return out


def _human(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} M"
    if n >= 10_000:
        return f"{n / 1e3:.0f} k"
    return f"{n:,}"


def _account(graph: Graph, claimed: set, held: list, mode: str = "eval mode") -> None:
    """Put the weights in ``held`` that no node claimed on ``graph.ledger`` (so the graph's
    totals are the framework's) and say so in ``graph.notes``.

    A module none of whose weights any node claimed is one entry (``AuxLogits``: the
    forward did not call it in ``mode``; torchvision's Inception-v3 runs its auxiliary
    classifier only in training mode); other weights are listed by name.
    """
    from ..graph import LedgerEntry

    left = [h for h in held if h[1] not in claimed]
    if not left:
        return
    total: dict = {}
    free: dict = {}
    for name, key, _, _ in held:
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            total[prefix] = total.get(prefix, 0) + 1
            if key not in claimed:
                free[prefix] = free.get(prefix, 0) + 1
    groups: dict = {}
    for name, key, numel, trainable in left:
        parts = name.split(".")
        owner = next((".".join(parts[:i]) for i in range(1, len(parts))
                      if free.get(".".join(parts[:i])) == total[".".join(parts[:i])]), None)
        entry = groups.setdefault(owner or name, [0, 0, owner is not None])
        entry[0] += numel
        entry[1] += numel if trainable else 0
    module_why = f"not reached in {mode}: the forward pass did not call it"
    param_why = f"not used by the forward pass in {mode}"
    for name, (numel, trainable, whole) in groups.items():
        graph.ledger.append(LedgerEntry(name, numel, trainable, module_why if whole else param_why))
    for whole, label in ((True, f"not reached in {mode}"), (False, f"held but not used in {mode}")):
        items = [f"{e.name} ({_human(e.params)} params)" for e in graph.ledger
                 if (e.why == module_why) == whole and e.why in (module_why, param_why)]
        if items:
            shown = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
            graph.notes.append(f"{label}: {shown}; counted in the totals, on no node")


# ---------------------------------------------------------------------------
# capture 1: torch.export
# ---------------------------------------------------------------------------

def _target_name(target) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__
    if hasattr(target, "__self__") and getattr(target, "__name__", "") == "__get__":
        return target.__self__.__name__  # a Tensor property: x.T
    name = getattr(target, "__name__", None)
    if name is None and hasattr(target, "name") and callable(target.name):
        name = target.name()
    return str(name if name is not None else target)


def _build_exported(ep, builder: _Builder, live: Optional[dict] = None) -> None:
    """Walk an ExportedProgram's graph; ``live`` maps module paths to the modules (None for a ``.pt2``)."""
    import torch
    from torch.export.graph_signature import InputKind

    sig = ep.graph_signature
    specs = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
    state = ep.state_dict
    nodes = list(ep.graph.nodes)
    all_paths = {path for n in nodes for path, _ in (n.meta.get("nn_module_stack") or {}).values()}

    def leaf_of(n):
        for key, (path, ty) in (n.meta.get("nn_module_stack") or {}).items():  # outermost first
            if live is not None:
                m = live.get(path)
                if m is not None and _is_leaf(m, root=(path == "")):
                    return key, path, m, _qualname(m)
                continue
            qn = ty if isinstance(ty, str) else f"{ty.__module__}.{ty.__qualname__}"
            k = T.key_from_qualname(qn)
            if k in T.CONTAINERS:
                continue
            if k is not None or (path and not any(p.startswith(path + ".") for p in all_paths)):
                return key, path, None, qn
        return None

    def scope_of(n):
        stack = n.meta.get("nn_module_stack") or {}
        return list(stack.values())[-1][0] if stack else ""

    env: dict = {}

    def arg(a, local=None):
        if isinstance(a, torch.fx.Node):
            if local is not None and a in local:
                return local[a]
            return env.get(a)
        if isinstance(a, (list, tuple)):
            return [arg(v, local) for v in a]
        if isinstance(a, dict):
            return {k: arg(v, local) for k, v in a.items()}
        if isinstance(a, (torch.dtype, torch.device, torch.memory_format, torch.layout)):
            return str(a)
        return a

    order = {n: i for i, n in enumerate(nodes)}
    groups: dict = {}
    last: dict = {}
    leaf = {}
    for n in nodes:
        if n.op == "call_function":
            lf = leaf_of(n)
            leaf[n] = lf
            if lf is not None:
                groups.setdefault(lf[0], []).append(n)
                last[lf[0]] = n

    for n in nodes:
        if n.op == "placeholder":
            spec = specs.get(n.name)
            val = n.meta.get("val")
            kind = spec.kind if spec is not None else InputKind.USER_INPUT
            if kind == InputKind.USER_INPUT:
                if isinstance(val, torch.Tensor):
                    env[n] = builder.add_input(n.name, _shapes(val)[0], _dtype(val))
                else:
                    env[n] = val
            elif kind in (InputKind.PARAMETER, InputKind.BUFFER):
                target = spec.target
                tensor = state.get(target)
                if live is not None:
                    try:
                        tensor = live[""].get_parameter(target) if kind == InputKind.PARAMETER \
                            else live[""].get_buffer(target)
                    except (AttributeError, KeyError):
                        pass
                if tensor is None:
                    tensor = val
                key = id(tensor) if live is not None else target
                env[n] = _param_arg(target, tensor, key=key, is_param=kind == InputKind.PARAMETER)
            else:
                env[n] = TArg("const", tuple(val.shape) if isinstance(val, torch.Tensor) else None)
        elif n.op == "call_function":
            lf = leaf[n]
            if lf is None:
                _export_function(n, builder, env, arg, scope_of(n))
            elif last[lf[0]] is n:
                _export_group(groups[lf[0]], lf, builder, env, arg, order)
        elif n.op == "get_attr":
            env[n] = None
        elif n.op == "output":
            builder.finish([arg(a) for a in n.args[0]] if isinstance(n.args[0], (list, tuple)) else [arg(n.args[0])])


def _export_function(n, builder: _Builder, env: dict, arg, scope: str) -> None:
    import torch

    target = n.target
    args = [arg(a) for a in n.args]
    kwargs = {k: arg(v) for k, v in n.kwargs.items()}
    if target is operator.getitem:
        base = args[0]
        env[n] = base[args[1]] if isinstance(base, (list, tuple)) else base
        return
    val = n.meta.get("val")
    shapes = _shapes(val)
    if not shapes:
        env[n] = val if not isinstance(val, torch.Tensor) else None
        return
    raw = _target_name(target)
    fname, inplace = T.function_key(raw)
    acts = [t for t in _flat((args, kwargs)) if isinstance(t, TArg) and t.kind == "act"]
    if fname in T.ELIDE and _passed(args, acts) is not None:
        env[n] = _passed(args, acts)
        return
    if not acts or fname in T.CONSTANT_MAKERS:
        env[n] = _derived((args, kwargs), shapes[0], fname)
        return
    outs = builder.function_call(fname, raw, "aten", args, kwargs, shapes, scope, f"aten.{raw}")
    env[n] = outs[0] if isinstance(val, torch.Tensor) else outs
    if inplace and n.args and isinstance(n.args[0], torch.fx.Node):
        env[n.args[0]] = env[n]


def _export_group(members: list, lf, builder: _Builder, env: dict, arg, order: dict) -> None:
    """One leaf-module call: the ATen ops that ran inside it."""
    import torch

    _key, path, module, qualname = lf
    mset = set(members)
    inputs, params, seen = [], [], set()
    local: dict = {}
    inner = []
    for m in members:
        for a in _flat((m.args, list(m.kwargs.values()))):
            if isinstance(a, torch.fx.Node) and a not in mset:
                v = env.get(a)
                if isinstance(v, TArg) and id(v) not in seen:
                    seen.add(id(v))
                    (inputs if v.kind == "act" else params if v.kind == "param" else []).append(v)
        val = m.meta.get("val")
        if m.target is operator.getitem:
            base = local.get(m.args[0])
            local[m] = base[m.args[1]] if isinstance(base, list) and m.args[1] < len(base) else base
            continue
        shapes = _shapes(val)
        args = [arg(a, local) for a in m.args]
        kwargs = {k: arg(v, local) for k, v in m.kwargs.items()}
        fname, _ = T.function_key(_target_name(m.target))
        inner.append(Call(fname, dialect="aten", args=args, kwargs=kwargs, out_shapes=shapes))
        outs = [TArg("act", s) for s in shapes]
        local[m] = outs[0] if isinstance(val, torch.Tensor) else outs
    outputs = [m for m in members if any(u not in mset for u in m.users)]
    def first_use(m):  # a module's outputs in the order they are used (then as the model returns them)
        users = [u for u in m.users if u not in mset]
        pos = min(order[u] for u in users)
        out_args = [a for u in users if u.op == "output" for a in _flat(u.args)]
        return pos, out_args.index(m) if m in out_args else 0

    outputs.sort(key=first_use)
    out_shapes, slots = [], []
    for m in outputs:
        val = m.meta.get("val")
        shapes = _shapes(val)
        slots.append((m, len(out_shapes), len(shapes), isinstance(val, torch.Tensor)))
        out_shapes.extend(shapes)
    if module is not None:
        params = _module_params(module, path)
    refs = builder.module_call(path, module, qualname, inputs, {}, out_shapes, params, inner=inner)
    for m, start, count, single in slots:
        vals = refs[start:start + count] or [refs[0]]
        env[m] = vals[0] if single else vals
    for m in members:  # an in-place op inside the module (ReLU(inplace=True)) rebinds its input
        _, inplace = T.function_key(_target_name(m.target))
        if inplace and m.args and isinstance(m.args[0], torch.fx.Node) and m.args[0] not in mset:
            env[m.args[0]] = env.get(outputs[-1]) if outputs else None


def _capture_export(module, specs, builder: _Builder, live: dict) -> str:
    import torch

    inputs = tuple(spec.empty() for spec in specs)
    ep = torch.export.export(module, inputs)
    calls: dict = {}  # a module's calls: one nn_module_stack key each (``ls``, ``ls_1``...)
    for key, path in {(k, p) for n in ep.graph.nodes for k, (p, _) in (n.meta.get("nn_module_stack") or {}).items()}:
        calls[path] = calls.get(path, 0) + 1
    builder.trace_through(live, calls)
    _build_exported(ep, builder, live)
    return "torch.export (non-strict; shapes from export's fake tensors)"


# ---------------------------------------------------------------------------
# capture 2: torch.fx
# ---------------------------------------------------------------------------

class _Spec(tuple):
    """One model input: shape (batch first), dtype, the user's example tensor or None, device."""

    def __new__(cls, shape, dtype, tensor, device):
        return super().__new__(cls, (shape, dtype, tensor, device))

    shape = property(lambda self: self[0])
    dtype = property(lambda self: self[1])

    def empty(self):
        """The example tensor, or an uninitialised one (never read: tracing uses only its metadata)."""
        import torch

        return self[2] if self[2] is not None else torch.empty(self[0], dtype=self[1], device=self[3])

    def random(self, gen):
        import torch

        if self[2] is not None:
            return self[2]
        shape, dtype, _, device = self
        if dtype.is_floating_point:
            return torch.randn(shape, generator=gen, dtype=dtype).to(device)
        return torch.zeros(shape, dtype=dtype, device=device)


def _fake_inputs(specs, mode):
    return [mode.from_tensor(spec.empty()) for spec in specs]


def _capture_fx(module, specs, builder: _Builder, live: dict) -> str:
    import torch
    import torch.fx

    calls: dict = {}

    class _Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return _is_leaf(m, root=m is module)

        def call_module(self, m, forward, args, kwargs):
            if m is not module and _traced_through(m):
                path = self.path_of_module(m)
                calls[path] = calls.get(path, 0) + 1
            return super().call_module(m, forward, args, kwargs)

    class _Root(torch.nn.Module):  # a root that is itself a leaf (nn.LSTM) is traced as one call
        def __init__(self):
            super().__init__()
            self.add_module(_ROOT, module)

    _Root.forward = {  # fx needs named arguments, not *args
        1: lambda self, a: getattr(self, _ROOT)(a),
        2: lambda self, a, b: getattr(self, _ROOT)(a, b),
        3: lambda self, a, b, c: getattr(self, _ROOT)(a, b, c),
    }.get(len(specs))

    whole = _is_leaf(module, root=True) and _Root.forward is not None
    tracer = _Tracer()
    graph = tracer.trace(_Root() if whole else module)
    gm = torch.fx.GraphModule(tracer.root, graph)
    try:
        values = _propagate_meta(gm, specs)
        how = "torch.fx on meta tensors (symbolic trace; shapes on storage-less meta tensors, known layers " \
              "sized by torch's output-size formulas, others run with meta stand-ins for their weights; tried " \
              "before torch.export, which costs seconds and as much memory as a forward pass to import)"
    except Exception as exc:  # a layer with weights and no shape rule, a tensor made on the CPU, ...
        values = _propagate_fake(gm, specs)
        how = f"torch.fx (symbolic trace; shapes from fake tensors: meta tensors failed, {_one_line(exc)})"

    env: dict = {}
    placeholders = iter(specs)
    root_names = _arg_names(module, len(specs))
    builder.trace_through(live, calls)

    def arg(a):
        if isinstance(a, torch.fx.Node):
            return env.get(a)
        if isinstance(a, (list, tuple)):
            return [arg(v) for v in a]
        if isinstance(a, dict):
            return {k: arg(v) for k, v in a.items()}
        if isinstance(a, (torch.dtype, torch.device, torch.memory_format, torch.layout)):
            return str(a)
        return a

    for n in graph.nodes:
        if n.op == "placeholder":
            spec = next(placeholders, None)
            if spec is None:  # an argument left to its default
                env[n] = n.args[0] if n.args else None
                continue
            name = root_names.pop(0) if whole else str(n.target)
            env[n] = builder.add_input(name, spec.shape, str(spec.dtype).replace("torch.", ""))
        elif n.op == "get_attr":
            obj = _fetch(module, n.target)
            if isinstance(obj, torch.nn.Parameter):
                env[n] = _param_arg(n.target, obj, key=id(obj), is_param=True)
            elif isinstance(obj, torch.Tensor):
                is_stat = n.target.rsplit(".", 1)[-1] in STAT_BUFFERS
                env[n] = _param_arg(n.target, obj, key=id(obj), is_param=False) if is_stat \
                    else TArg("const", tuple(obj.shape))
            else:
                env[n] = obj
        elif n.op == "call_module":
            sub = gm.get_submodule(n.target)
            path = "" if whole and n.target == _ROOT else n.target
            val = values.get(n)
            args = [arg(a) for a in n.args]
            kwargs = {k: arg(v) for k, v in n.kwargs.items()}
            refs = builder.module_call(path, sub, _qualname(sub), args, kwargs, _shapes(val),
                                       _module_params(sub, path))
            env[n] = refs[0] if isinstance(val, torch.Tensor) else _restructure(val, refs)
            if getattr(sub, "inplace", False) and n.args and isinstance(n.args[0], torch.fx.Node):
                env[n.args[0]] = env[n]
        elif n.op in ("call_function", "call_method"):
            stack = n.meta.get("nn_module_stack") or {}
            scope = list(stack.values())[-1][0] if stack else ""
            _python_call(n.target if n.op == "call_method" else n.target, n.op == "call_method",
                         [arg(a) for a in n.args], {k: arg(v) for k, v in n.kwargs.items()}, values.get(n),
                         builder, scope, lambda v, n=n: env.__setitem__(n, v),
                         rebind=(lambda v, n=n: env.__setitem__(n.args[0], v))
                         if n.args and isinstance(n.args[0], torch.fx.Node) else None)
        elif n.op == "output":
            builder.finish(arg(n.args[0]))
    return how


def _propagate_fake(gm, specs) -> dict:
    """{fx node: value} of one run of ``gm`` on fake tensors (real parameters are read as fakes)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake = _fake_inputs(specs, mode)
    interp = _recording(torch.fx.Interpreter)(gm)
    with mode:
        interp.run(*fake)
    return interp.values


def _recording(base):
    """``base`` (an fx Interpreter class) that keeps every node's value in ``self.values``."""
    class Recording(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.values: dict = {}

        def run_node(self, n):
            out = super().run_node(n)
            self.values[n] = out
            return out

    return Recording


class _NoMetaRule(Exception):
    """A call that cannot run on meta tensors here (a module with weights and no shape rule)."""


def _propagate_meta(gm, specs) -> dict:
    """{fx node: value} of one run of ``gm`` on meta tensors (shape and dtype, no storage).

    Running an ATen op on meta tensors makes torch import its symbolic-shape and
    dynamo stack (sympy, ``torch._dynamo``: ~1.5 s and ~75 MiB on first use, more
    than the activations of a ResNet-50 forward pass at 224), so the usual layers
    and functions are sized by :func:`_meta_module` / :func:`_meta_function`, torch's
    own output-size formulas, and make an empty meta tensor; everything else runs
    on the meta tensors as it is (views, ``size()``: no import; other ops may import
    that stack, which costs time, not correctness). Parameters and
    buffers are read as meta tensors of their shape and dtype: no weight is copied
    and the module is never run with other weights. A module with weights that no
    rule covers raises :class:`_NoMetaRule` (the caller then uses fake tensors).
    """
    import torch

    class _MetaInterp(_recording(torch.fx.Interpreter)):
        def get_attr(self, target, args, kwargs):
            obj = super().get_attr(target, args, kwargs)
            return _meta_like(obj) if isinstance(obj, torch.Tensor) else obj

        def call_module(self, target, args, kwargs):
            sub = self.fetch_attr(target)
            out = _meta_module(sub, args, kwargs)
            if out is not None:
                return out
            if next(sub.parameters(), None) is not None or next(sub.buffers(), None) is not None:
                try:  # run it with meta stand-ins for its weights (the module's own are not touched)
                    return _meta_call(sub, args, kwargs)
                except Exception as exc:
                    raise _NoMetaRule(f"{type(sub).__name__} ({target}) has weights and no shape rule "
                                      f"({_one_line(exc)})") from None
            return sub(*args, **kwargs)  # no weights: run it on the meta tensors

        def call_function(self, target, args, kwargs):
            out = _meta_function(_target_name(target), args, kwargs)
            return out if out is not None else super().call_function(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            out = _meta_function(target, args, kwargs)
            return out if out is not None else super().call_method(target, args, kwargs)

    inputs = [torch.empty(spec.shape, dtype=spec.dtype, device="meta") for spec in specs]
    interp = _MetaInterp(gm)
    with torch.device("meta"):  # tensors the forward makes (torch.zeros(x.shape)) are meta too
        interp.run(*inputs)
    return interp.values


def _meta_call(module, args, kwargs):
    """``module(*args, **kwargs)`` with every parameter and buffer swapped for an empty meta
    tensor of its shape and dtype (torch.func.functional_call): no weight is read or copied."""
    import torch

    if all(t.is_meta for t in (*module.parameters(), *module.buffers())):
        return module(*args, **kwargs)
    state = {n: _meta_like(t) for n, t in (*module.named_parameters(), *module.named_buffers()) if t is not None}
    return torch.func.functional_call(module, state, tuple(args), dict(kwargs))


def _meta_like(t):
    import torch

    return torch.empty(tuple(t.shape), dtype=t.dtype, device="meta")


def _is_meta_float(t) -> bool:
    import torch

    return isinstance(t, torch.Tensor) and t.is_meta and t.is_floating_point()


def _window_len(n: int, k: int, s: int, d: int, p: int, ceil: bool = False) -> int:
    """torch's output length of a conv / pool window (pooling's ceil_mode included)."""
    out = ops.conv_out_len(n, k, s, d, (p, p), ceil)
    if out < 1:
        raise ValueError("output too small")
    return out


def _meta_module(m, args, kwargs):
    """The output of a known ``torch.nn`` layer on a meta input, sized by torch's
    formulas without running it; None where no rule applies (or the input does not
    fit the layer: the layer is then run, and fails as torch would)."""
    import torch

    key = T.module_key(m)
    x = args[0] if len(args) == 1 else None
    if key is None or kwargs or not isinstance(x, torch.Tensor) or not x.is_meta:
        return None
    if key == "Embedding":  # integer indices in, rows of the weight out
        if x.is_floating_point() or x.is_complex():
            return None
        return torch.empty((*x.shape, m.embedding_dim), dtype=m.weight.dtype, device="meta")
    if not x.is_floating_point() or \
            any(t.is_floating_point() and t.dtype != x.dtype for t in (*m.parameters(), *m.buffers())):
        return None
    shape = tuple(x.shape)
    rank = int(key[-2]) if key[-2:] in ("1d", "2d", "3d") else None
    try:
        out = _module_rule(key, m, shape, rank)
    except (TypeError, ValueError, ArithmeticError, ops.ShapeError):
        return None
    return None if out is None else torch.empty(out, dtype=x.dtype, device="meta")


_SAME_SHAPE_MODULES = frozenset(
    "ReLU ReLU6 LeakyReLU ELU CELU SELU GELU SiLU Mish Sigmoid Tanh Hardswish Hardsigmoid Hardtanh Softplus "
    "Softsign LogSigmoid Threshold Softmax LogSoftmax Dropout AlphaDropout".split())


def _module_rule(key: str, m, shape: tuple, rank):  # noqa: C901 - one rule per layer family
    n = len(shape)
    if key in _SAME_SHAPE_MODULES:
        return shape
    if key.startswith("Conv") and not key.startswith("ConvTranspose"):
        if n != rank + 2 or shape[1] != m.in_channels:
            return None
        k, s, d = (T.tup(v, rank) for v in (m.kernel_size, m.stride, m.dilation))
        if isinstance(m.padding, str):
            if m.padding == "same":
                return (shape[0], m.out_channels, *shape[2:])
            pad = (0,) * rank
        else:
            pad = T.tup(m.padding, rank)
        return (shape[0], m.out_channels,
                *(_window_len(shape[2 + i], k[i], s[i], d[i], pad[i]) for i in range(rank)))
    if key.startswith("ConvTranspose"):
        if n != rank + 2 or shape[1] != m.in_channels or m.padding_mode != "zeros":
            return None
        k, s, d, p, op = (T.tup(v, rank) for v in (m.kernel_size, m.stride, m.dilation, m.padding, m.output_padding))
        out = tuple((shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(rank))
        return (shape[0], m.out_channels, *out) if all(v >= 1 for v in out) else None
    if key.startswith("InstanceNorm"):
        if n not in (rank + 1, rank + 2):
            return None
        return shape if not (m.affine or m.track_running_stats) or shape[-rank - 1] == m.num_features else None
    if key in ("Linear", "NonDynamicallyQuantizableLinear"):
        return (*shape[:-1], m.out_features) if n >= 1 and shape[-1] == m.in_features else None
    if key.startswith("BatchNorm"):
        dims = (2, 3) if rank == 1 else (rank + 2,)
        return shape if n in dims and shape[1] == m.num_features else None
    if key == "LayerNorm":
        norm = tuple(m.normalized_shape)
        return shape if n >= len(norm) and shape[n - len(norm):] == norm else None
    if key == "GroupNorm":
        return shape if n >= 2 and shape[1] == m.num_channels else None
    if key == "PReLU":
        return shape if m.num_parameters == 1 or (n >= 2 and shape[1] == m.num_parameters) else None
    if key.startswith(("MaxPool", "AvgPool")):
        if n != rank + 2 or getattr(m, "return_indices", False):
            return None
        k = T.tup(m.kernel_size, rank)
        s = T.tup(m.stride or m.kernel_size, rank)
        d = T.tup(getattr(m, "dilation", 1), rank)
        pad = T.tup(m.padding, rank)
        if any(2 * pad[i] > ((k[i] - 1) * d[i] + 1 if key.startswith("Max") else k[i]) for i in range(rank)):
            return None
        return (*shape[:2], *(_window_len(shape[2 + i], k[i], s[i], d[i], pad[i], bool(m.ceil_mode))
                              for i in range(rank)))
    if key.startswith(("AdaptiveAvgPool", "AdaptiveMaxPool")):
        if n != rank + 2 or getattr(m, "return_indices", False):
            return None
        size = m.output_size if isinstance(m.output_size, (list, tuple)) else (m.output_size,)
        size = tuple(size) * rank if len(size) == 1 else tuple(size)
        if len(size) != rank:
            return None
        return (*shape[:2], *(shape[2 + i] if size[i] is None else int(size[i]) for i in range(rank)))
    return None


_UNARY = frozenset({"relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "hard_silu", "hard_sigmoid", "leaky_relu",
                    "elu", "selu", "celu", "mish", "softplus", "softsign", "log_sigmoid", "hardtanh", "dropout",
                    "softmax", "log_softmax"})
_BINARY = frozenset({"add", "sub", "mul", "div"})


def _meta_function(raw: str, args, kwargs):
    """The output of a common function of meta tensors (element-wise arithmetic and
    activations, ``cat``, ``mean``), sized without running it; None where no rule applies."""
    import torch

    if "out" in kwargs or any(isinstance(v, (torch.dtype, torch.device)) for v in _flat((args, kwargs))):
        return None
    fname, _ = T.function_key(raw)
    tensors = [t for t in _flat((args, kwargs)) if isinstance(t, torch.Tensor)]
    if not tensors or not all(_is_meta_float(t) and t.dtype == tensors[0].dtype for t in tensors):
        return None
    first = args[0] if args else None
    try:
        if fname in _UNARY:
            shape = tuple(first.shape) if len(tensors) == 1 and first is tensors[0] else None
        elif fname in _BINARY:
            shape = _binary_shape(raw, args[:2], kwargs)
        elif fname == "cat":
            shape = _cat_shape(args, kwargs)
        elif fname == "mean":
            shape = _mean_shape(args, kwargs)
        else:
            shape = None
    except (TypeError, ValueError, IndexError):
        return None
    return None if shape is None else torch.empty(shape, dtype=tensors[0].dtype, device="meta")


def _binary_shape(raw: str, operands, kwargs):
    import torch

    if len(operands) != 2 or set(kwargs) - {"alpha", "rounding_mode"}:
        return None
    shapes = []
    for v in operands:
        if isinstance(v, torch.Tensor):
            shapes.append(tuple(v.shape))
        elif isinstance(v, (int, float)):
            shapes.append(())
        else:
            return None
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            return None  # does not broadcast: let torch say so
        out.append(dims.pop() if dims else 1)
    out = tuple(out)
    inplace = raw.endswith("_") or raw in ("iadd", "isub", "imul", "itruediv")
    if inplace and (not isinstance(operands[0], torch.Tensor) or tuple(operands[0].shape) != out):
        return None
    return out


def _cat_shape(args, kwargs):
    seq = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(seq, (list, tuple)) or not seq or not isinstance(dim, int):
        return None
    shapes = [tuple(t.shape) for t in seq]
    rank = len(shapes[0])
    if not rank or any(len(s) != rank for s in shapes):
        return None
    dim %= rank
    if any(s[:dim] + s[dim + 1:] != shapes[0][:dim] + shapes[0][dim + 1:] for s in shapes):
        return None
    return (*shapes[0][:dim], sum(s[dim] for s in shapes), *shapes[0][dim + 1:])


def _mean_shape(args, kwargs):
    x = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if set(kwargs) - {"dim", "keepdim"} or not isinstance(keep, bool) or dim is None:
        return None
    rank = x.dim()
    dims = {int(d) % rank for d in (dim if isinstance(dim, (list, tuple)) else (dim,))}
    if not dims:
        return None
    shape = tuple(x.shape)
    return tuple(1 if i in dims else v for i, v in enumerate(shape)) if keep else \
        tuple(v for i, v in enumerate(shape) if i not in dims)


def _fetch(root, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _restructure(val, refs: list):
    """A module's (nested) tuple output -> the same nesting of output TArgs."""
    import torch

    it = iter(refs)

    def walk(v):
        if isinstance(v, torch.Tensor):
            return next(it, None)
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(val)


def _python_call(target, is_method: bool, args, kwargs, val, builder: _Builder, scope: str, bind, rebind=None):
    """A function or Tensor method between leaf modules (fx and hooks captures)."""
    import torch

    raw = target if is_method else _target_name(target)
    if raw in ("getitem",) and isinstance(args[0], (list, tuple)):
        idx = args[1]
        bind(args[0][idx] if isinstance(idx, int) and idx < len(args[0]) else None)
        return
    shapes = _shapes(val)
    if not shapes:
        bind(val if not isinstance(val, torch.Tensor) else None)
        return
    fname, inplace = T.function_key(raw)
    acts = [t for t in _flat((args, kwargs)) if isinstance(t, TArg) and t.kind == "act"]
    if fname in T.ELIDE and _passed(args, acts) is not None:
        bind(_passed(args, acts))
        return
    if not acts or fname in T.CONSTANT_MAKERS:
        bind(_derived((args, kwargs), shapes[0], fname))
        return
    if is_method:
        source = f"Tensor.{raw}"
    else:
        mod = (getattr(target, "__module__", None) or "torch").replace("torch.nn.functional", "F")
        source = f"{'operator' if mod == '_operator' else mod}.{raw}"
    outs = builder.function_call(fname, raw, "python", args, kwargs, shapes, scope, source)
    bind(outs[0] if isinstance(val, torch.Tensor) else _restructure(val, outs))
    if inplace and rebind is not None:
        rebind(outs[0])


# ---------------------------------------------------------------------------
# capture 3: forward hooks + a TorchFunctionMode
# ---------------------------------------------------------------------------

def _capture_hooks(module, specs, builder: _Builder, live: dict, fake: bool = True) -> str:
    import torch
    from torch.overrides import TorchFunctionMode

    paths = {id(m): p for p, m in live.items()}
    owned = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        owned.setdefault(id(p), _param_arg(name, p, key=id(p), is_param=True))
    for name, b in module.named_buffers(remove_duplicate=False):
        if b is not None and id(b) not in owned:
            is_stat = name.rsplit(".", 1)[-1] in STAT_BUFFERS
            owned[id(b)] = _param_arg(name, b, key=id(b), is_param=False) if is_stat else TArg("const", tuple(b.shape))
    values: dict = {}
    keep: list = []
    state = {"depth": 0, "scope": [], "pending": [], "on": False}

    def register(t, targ):
        values[id(t)] = targ
        keep.append(t)

    def mapped(obj):
        if isinstance(obj, torch.Tensor):
            v = values.get(id(obj))
            if v is not None:
                return v
            if id(obj) in owned:
                return owned[id(obj)]
            return TArg("const", tuple(obj.shape))
        if isinstance(obj, (list, tuple)):
            return [mapped(v) for v in obj]
        if isinstance(obj, dict):
            return {k: mapped(v) for k, v in obj.items()}
        if isinstance(obj, (torch.dtype, torch.device)):
            return str(obj)
        return obj

    def pre(m, args, kwargs):
        if not state["on"]:
            return
        state["scope"].append(paths.get(id(m), ""))
        if state["depth"]:
            state["depth"] += 1
        elif m is not module and _traced_through(m):
            calls[paths.get(id(m), "")] = calls.get(paths.get(id(m), ""), 0) + 1
        elif _is_leaf(m, root=m is module):
            state["depth"] = 1
            state["pending"].append((m, mapped(list(args)), mapped(dict(kwargs))))

    def post(m, args, kwargs, out):
        if not state["on"]:
            return
        state["scope"].pop()
        if not state["depth"]:
            return
        state["depth"] -= 1
        if state["depth"] == 0:
            sub, a, kw = state["pending"].pop()
            path = paths.get(id(sub), "")
            tensors = [t for t in _flat(out) if isinstance(t, torch.Tensor)]
            refs = builder.module_call(path, sub, _qualname(sub), a, kw, [tuple(t.shape) for t in tensors],
                                       _module_params(sub, path))
            for t, r in zip(tensors, refs):
                register(t, r)

    class _Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if state["on"] and state["depth"] == 0:
                tensors = [t for t in _flat(out) if isinstance(t, torch.Tensor)]
                if tensors:
                    scope = state["scope"][-1] if state["scope"] else ""
                    bound = []
                    _python_call(func, False, mapped(list(args)), mapped(dict(kwargs)), out, builder, scope,
                                 bound.append)
                    res = bound[0] if bound else None
                    flat = [r for r in _flat(res)] if isinstance(res, (list, tuple)) else [res] * len(tensors)
                    for t, r in zip(tensors, flat):
                        if isinstance(r, TArg):
                            register(t, r)
            return out

    calls: dict = {}
    handles = []
    for m in live.values():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    try:
        if fake:
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode(allow_non_fake_inputs=True)
            inputs = _fake_inputs(specs, mode)
        else:
            gen = torch.Generator().manual_seed(0)
            inputs = [spec.random(gen) for spec in specs]
        names = _arg_names(module, len(specs))
        for name, spec, x in zip(names, specs, inputs):
            register(x, builder.add_input(name, spec.shape, str(spec.dtype).replace("torch.", "")))
        ctx = mode if fake else torch.no_grad()
        with ctx:
            state["on"] = True
            with _Recorder():
                out = module(*inputs)
            state["on"] = False
        builder.trace_through(live, calls)
        builder.finish([values.get(id(t)) for t in _flat(out) if isinstance(t, torch.Tensor)])
    finally:
        state["on"] = False
        for h in handles:
            h.remove()
    pruned = _prune(builder.g)
    if not fake:
        builder.g.notes.append("the graph follows the branches that one random input took")
    if pruned:
        builder.g.notes.append(f"{pruned} calls whose results reach no output were dropped")
    return "forward hooks on fake tensors" if fake else \
        "forward hooks on a real forward pass (random input, seed 0, no_grad)"


def _arg_names(module, n: int) -> list:
    import inspect

    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = params[:n]
    return names + [f"input_{i}" for i in range(len(names), n)]


# ---------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """Silence what torch prints while a capture is tried (export dumps the
    failing graph to stderr and logs warnings); failures are reported in notes."""
    prev = logging.root.manager.disable
    logging.disable(max(prev, logging.ERROR))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(prev)


def _input_specs(module, input_shape, example_inputs, name):
    import torch

    if example_inputs is not None:
        xs = example_inputs if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
        if not all(isinstance(x, torch.Tensor) for x in xs):
            raise InputError(name, "example_inputs must be a tensor or a tuple of tensors")
        return [_Spec(tuple(x.shape), x.dtype, x, x.device) for x in xs]
    if input_shape is None:
        raise InputError(name, "a PyTorch module does not record its input shape: pass input_shape "
                               "(e.g. (1, 3, 224, 224), batch first; on the command line --input-shape 1,3,224,224) "
                               "or example_inputs")
    shapes = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
    try:
        shapes = [tuple(int(d) for d in s) for s in shapes]
    except (TypeError, ValueError):
        raise InputError(name, f"input_shape {input_shape!r} is not a shape (a tuple of ints, batch first)") from None
    first = next((p for p in module.parameters() if p.is_floating_point()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = torch.long if _takes_indices(module) else first.dtype if first is not None else torch.float32
    return [_Spec(s, dtype, None, device) for s in shapes]


def _takes_indices(module) -> bool:
    """Does the first module with parameters look up embeddings (integer input)?"""
    for m in module.modules():
        if next(m.parameters(recurse=False), None) is not None:
            return T.module_key(m) == "Embedding" or type(m).__name__ == "EmbeddingBag"
    return False


def graph_from_module(module, *, input_shape=None, example_inputs=None, name: Optional[str] = None,
                      capture: str = "auto") -> Graph:
    """A :class:`Graph` of a live ``torch.nn.Module``.

    ``input_shape``: the input's shape in PyTorch's layout, batch first
    (``(1, 3, 224, 224)``), or a list of shapes for several inputs; or pass
    ``example_inputs`` (a tensor or a tuple of tensors; used for their shapes
    and dtypes, and as data only by the last-resort real forward pass).
    ``capture``: ``"auto"`` (fx on meta tensors, then export, then hooks: the
    module docstring says why fx comes first) or one of ``"fx"``, ``"export"``,
    ``"hooks"``. ``graph.notes[0]`` says which capture made the graph
    (``captured with torch.fx on meta tensors ...``) and why earlier ones failed.
    """
    import torch

    gname = name or type(module).__name__
    if not isinstance(module, torch.nn.Module):
        raise InputError(gname, "not a torch.nn.Module")
    specs = _input_specs(module, input_shape, example_inputs, gname)
    batch = specs[0][0][0] if specs and specs[0][0] else None
    order = AUTO if capture == "auto" else (capture,)
    if any(c not in CAPTURES for c in order):
        raise InputError(gname, f"unknown capture {capture!r} (auto, {', '.join(CAPTURES)})")
    live = dict(module.named_modules())
    reserved = set(live)
    flags = [(m, m.training) for m in module.modules()]
    failures = []
    attempts = [(c, True) for c in order] + ([("hooks", False)] if "hooks" in order else [])
    try:
        module.eval()
        for method, fake in attempts:
            graph = Graph(name=gname, framework="torch", source_format="live", model_class=type(module).__name__,
                          layout=LAYOUT, framework_version=torch.__version__)
            builder = _Builder(graph, batch, reserved=reserved)
            try:
                with _quiet():
                    if method == "hooks":
                        how = _capture_hooks(module, specs, builder, live, fake=fake)
                    else:
                        how = {"export": _capture_export, "fx": _capture_fx}[method](module, specs, builder, live)
            except Exception as exc:
                label = {"export": "torch.export", "fx": "torch.fx", "hooks": "forward hooks"}[method]
                failures.append(f"{label}{'' if fake or method != 'hooks' else ' (real tensors)'} failed: "
                                f"{_one_line(exc)}")
                continue
            graph.notes.insert(0, f"captured with {how}" + (f": {'; '.join(failures)}" if failures else ""))
            _account(graph, builder.claimed, _held_by_module(module))
            return graph
        raise InputError(gname, "could not capture the module: " + "; ".join(failures))
    finally:
        for m, flag in flags:
            m.training = flag


def graph_from_exported_program(ep, name: Optional[str] = None) -> Graph:
    """A :class:`Graph` of a ``torch.export.ExportedProgram`` (e.g. ``torch.export.load("model.pt2")``).

    Shapes are those recorded at export; leaf modules are recognised from the
    recorded module stack and read from their ATen ops (no module attributes
    survive export); parameters are counted from the program's state dict.
    """
    import torch

    model_class = ""
    for n in ep.graph.nodes:
        stack = n.meta.get("nn_module_stack") or {}
        for path, ty in stack.values():
            if path == "":
                qn = ty if isinstance(ty, str) else f"{ty.__module__}.{ty.__qualname__}"
                model_class = qn.rsplit(".", 1)[-1]
                break
        if model_class:
            break
    batch = None
    for spec in ep.graph_signature.input_specs:
        if spec.kind.name == "USER_INPUT":
            for n in ep.graph.nodes:
                if n.op == "placeholder" and n.name == getattr(spec.arg, "name", None):
                    val = n.meta.get("val")
                    if isinstance(val, torch.Tensor) and val.dim():
                        batch = int(val.shape[0]) if not isinstance(val.shape[0], torch.SymInt) else None
            break
    graph = Graph(name=name or model_class or "exported_program", framework="torch", source_format="pt2",
                  model_class=model_class or "ExportedProgram", layout=LAYOUT, framework_version=torch.__version__)
    builder = _Builder(graph, batch)
    with _quiet():
        _build_exported(ep, builder, None)
    graph.notes.append("read from a torch.export program: shapes as recorded at export, layers from their ATen ops")
    _account(graph, builder.claimed, _held_by_program(ep), mode="the exported program")
    return graph


# ---------------------------------------------------------------------------
# TorchScript
# ---------------------------------------------------------------------------

_SCALAR_OPS = {
    "aten::add": operator.add, "aten::sub": operator.sub, "aten::mul": operator.mul,
    "aten::floordiv": operator.floordiv, "aten::div": operator.truediv, "aten::remainder": operator.mod,
    "aten::eq": operator.eq, "aten::ne": operator.ne, "aten::lt": operator.lt, "aten::le": operator.le,
    "aten::gt": operator.gt, "aten::ge": operator.ge, "aten::__and__": operator.and_, "aten::__or__": operator.or_,
    "aten::__is__": operator.is_, "aten::__isnot__": operator.is_not, "aten::pow": operator.pow,
}
_PASS = ("aten::Int", "aten::Float", "aten::ScalarImplicit", "prim::NumToTensor", "prim::unchecked_cast",
         "aten::FloatImplicit", "aten::IntImplicit", "aten::Bool")
_IGNORE = ("aten::warn", "prim::RaiseException", "prim::device", "prim::dtype", "aten::format", "prim::Print",
           "aten::__interpolate", "prim::Uninitialized", "aten::dim", "prim::layout")


class _ScriptWalker:
    """Walks a TorchScript module's method graphs, module by module."""

    def __init__(self, builder: _Builder, batch: Optional[int], root=None):
        self.b = builder
        self.batch = batch
        self.root = root
        self.notes: list = []
        self._params: dict = {}

    def param_names(self, mod) -> set:
        key = id(mod)
        if key not in self._params:
            self._params[key] = (mod, {n for n, _ in mod.named_parameters(recurse=False)})
        return self._params[key][1]

    def method_graph(self, mod, method: str):
        return getattr(mod, method).graph

    def run(self, mod, method: str, path: str, args: list) -> list:
        graph = self.method_graph(mod, method)
        inputs = list(graph.inputs())
        env = {inputs[0]: ("module", mod, path)}
        for v, a in zip(inputs[1:], args):
            env[v] = a
        self.block(graph.nodes(), env, path)
        return [env.get(v) for v in graph.return_node().inputs()]

    def block(self, nodes, env, path):
        for node in nodes:
            try:
                self.node(node, env, path)
            except Exception as exc:  # keep walking: the outputs are unknown
                self.notes.append(f"{node.kind()} in {path or 'forward'}: {_one_line(exc)}")
                for o in node.outputs():
                    env.setdefault(o, None)

    def node(self, node, env, path):  # noqa: C901 - one dispatch on node kind
        import torch

        kind = node.kind()
        ins = [env.get(v) for v in node.inputs()]
        outs = list(node.outputs())
        if kind == "prim::Constant":
            env[outs[0]] = _ts_constant(outs[0])
        elif kind == "prim::GetAttr":
            owner = ins[0]
            attr = node.s("name")
            if isinstance(owner, tuple) and owner[0] == "module":
                mod, mpath = owner[1], owner[2]
                value = getattr(mod, attr)
                sub = f"{mpath}.{attr}" if mpath else attr
                if isinstance(value, torch.jit.ScriptModule):
                    env[outs[0]] = ("module", value, sub)
                elif isinstance(value, torch.Tensor):
                    is_param = attr in self.param_names(mod)
                    stat = attr in STAT_BUFFERS
                    env[outs[0]] = _param_arg(sub, value, key=sub, is_param=is_param) if is_param or stat \
                        else TArg("const", tuple(value.shape))
                else:
                    env[outs[0]] = value
            else:
                env[outs[0]] = None
        elif kind == "prim::CallMethod":
            target = ins[0]
            method = node.s("name")
            if not (isinstance(target, tuple) and target[0] == "module"):
                raise ValueError("method call on an unknown object")
            _, mod, mpath = target
            if mod is not self.root and self.is_leaf(mod):
                res = self.leaf(mod, method, mpath, ins[1:])
            else:
                res = self.run(mod, method, mpath, ins[1:])
            for o, r in zip(outs, res):
                env[o] = r
        elif kind == "prim::CallFunction":
            fn_type = str(node.inputsAt(0).type())
            raw = fn_type.rsplit(".", 1)[-1]
            self.function(raw, "python", ins[1:], outs, env, path, source=fn_type.replace("__torch__.", ""))
        elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
            env[outs[0]] = list(ins)
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            seq = ins[0] if isinstance(ins[0], (list, tuple)) else [None] * len(outs)
            for o, v in zip(outs, seq):
                env[o] = v
        elif kind in ("prim::TupleIndex", "aten::__getitem__") and isinstance(ins[0], (list, tuple)):
            env[outs[0]] = ins[0][ins[1]] if isinstance(ins[1], int) else None
        elif kind == "prim::If":
            cond = ins[0]
            if not isinstance(cond, bool):
                raise ValueError("data-dependent branch: outputs unknown")
            blk = list(node.blocks())[0 if cond else 1]
            self.block(blk.nodes(), env, path)
            for o, v in zip(outs, blk.outputs()):
                env[o] = env.get(v)
        elif kind == "aten::size":
            shape = ins[0].shape if isinstance(ins[0], TArg) else None
            if shape is None:
                env[outs[0]] = None
            elif len(ins) > 1 and isinstance(ins[1], int):
                d = shape[ins[1]]
                env[outs[0]] = self.batch if d is None and ins[1] % len(shape) == 0 else d
            else:
                env[outs[0]] = [self.batch if d is None and i == 0 else d for i, d in enumerate(shape)]
        elif kind == "aten::dim":
            env[outs[0]] = len(ins[0].shape) if isinstance(ins[0], TArg) and ins[0].shape is not None else None
        elif kind == "aten::len":
            env[outs[0]] = len(ins[0]) if isinstance(ins[0], (list, tuple)) else None
        elif kind in _PASS:
            env[outs[0]] = ins[0]
        elif kind in _SCALAR_OPS and not any(isinstance(v, TArg) for v in ins):
            try:
                env[outs[0]] = _SCALAR_OPS[kind](*ins[:2])
            except Exception:
                env[outs[0]] = None
        elif kind == "aten::neg" and isinstance(ins[0], (int, float)):
            env[outs[0]] = -ins[0]
        elif kind == "aten::__not__" and isinstance(ins[0], bool):
            env[outs[0]] = not ins[0]
        elif kind in _IGNORE:
            for o in outs:
                env[o] = None
        elif kind == "prim::Loop":
            raise ValueError("loops are not unrolled: outputs unknown")
        elif kind.startswith("aten::"):
            self.function(kind.split("::", 1)[1], "aten", ins, outs, env, path, source=kind.replace("::", "."))
        else:
            for o in outs:
                env[o] = None

    def function(self, raw, dialect, ins, outs, env, path, source):
        tensor_outs = [o for o in outs if o.type().kind() in ("TensorType", "ListType", "TupleType")
                       and "Tensor" in str(o.type())]
        fname, inplace = T.function_key(raw)
        acts = [t for t in _flat(ins) if isinstance(t, TArg) and t.kind == "act"]
        if not tensor_outs:
            for o in outs:
                env[o] = None
            return
        if fname in T.ELIDE and _passed(ins, acts) is not None:
            env[outs[0]] = _passed(ins, acts)
            return
        if not acts or fname in T.CONSTANT_MAKERS:
            shape = None
            if fname in ("zeros", "ones", "empty", "full", "rand", "randn") and isinstance(ins[0], (list, tuple)):
                shape = tuple(ins[0])
            for o in outs:
                env[o] = _derived(ins, shape, fname)
            return
        res = self.b.function_call(fname, raw, dialect, ins, {}, None, path, source)
        if len(outs) == 1 and str(outs[0].type()).startswith(("Tensor[]", "List[Tensor]")):
            env[outs[0]] = res
        else:
            for i, o in enumerate(outs):
                env[o] = res[i] if i < len(res) else TArg("act", None, ref=res[0].ref)

    def is_leaf(self, mod) -> bool:
        key = T.key_from_qualname(_ts_qualname(mod))
        if key in T.CONTAINERS:
            return False
        return key is not None  # other modules are walked into: their ATen ops have inferable shapes

    def leaf(self, mod, method, mpath, args) -> list:
        qn = _ts_qualname(mod)
        inner = self.inner_calls(mod, method, args)
        res = self.b.module_call(mpath, mod, qn, list(args), {}, None, _module_params(mod, mpath, by_fqn=True),
                                 inner=inner)
        return [res[0] if len(res) == 1 else res]

    def inner_calls(self, mod, method, args) -> list:
        """The ATen ops of a leaf's method (inlined), as calls, for modules that keep no attributes."""
        import torch

        try:
            graph = self.method_graph(mod, method).copy()
            torch._C._jit_pass_inline(graph)
        except Exception:
            return []
        inputs = list(graph.inputs())
        env = {inputs[0]: ("module", mod, "")}
        for v, a in zip(inputs[1:], args):
            env[v] = a
        calls = []
        for node in graph.nodes():
            kind = node.kind()
            ins = [env.get(v) for v in node.inputs()]
            outs = list(node.outputs())
            if kind == "prim::Constant":
                env[outs[0]] = _ts_constant(outs[0])
            elif kind == "prim::GetAttr" and isinstance(ins[0], tuple):
                value = getattr(ins[0][1], node.s("name"), None)
                env[outs[0]] = TArg("param", tuple(value.shape)) if isinstance(value, torch.Tensor) else value
            elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
                env[outs[0]] = list(ins)
            elif kind == "aten::t" and isinstance(ins[0], TArg):
                env[outs[0]] = TArg(ins[0].kind, tuple(reversed(ins[0].shape or ())))
            elif kind.startswith("aten::"):
                fname, _ = T.function_key(kind)
                calls.append(Call(fname, dialect="aten", args=ins))
                first = next((a for a in ins if isinstance(a, TArg) and a.kind == "act"), None)
                for o in outs:
                    env[o] = TArg("act", first.shape if first is not None else None)
        return calls


def _ts_constant(value):
    import torch

    try:
        v = value.toIValue()
    except Exception:
        return None
    if isinstance(v, torch.Tensor):
        return TArg("const", tuple(v.shape))
    if isinstance(v, tuple):
        return list(v)
    return v


def _ts_qualname(mod) -> str:
    try:
        return mod._c._type().qualified_name()
    except Exception:
        return getattr(mod, "original_name", type(mod).__name__)


def graph_from_torchscript(script_module, input_shape=None, name: Optional[str] = None) -> Graph:
    """A :class:`Graph` of a TorchScript module (``torch.jit.load("model.pt")``), read without running it.

    The module hierarchy is walked through its method graphs: a call of a
    submodule known to :data:`~.torch_ops.MODULES` is one node, read from the
    submodule's constants (scripted) or its ATen ops (traced); other submodules
    are walked into; ATen ops between them go through the function table.
    Shapes are inferred from ``input_shape`` (NCHW, batch first; required: the
    archive does not record it) with :func:`modellint.ops.infer_shapes`.
    """
    import torch

    gname = name or getattr(script_module, "original_name", None) or "torchscript"
    if input_shape is None:
        raise InputError(gname, "a TorchScript archive does not record its input shape: pass --input-shape "
                                "(e.g. --input-shape 1,3,224,224, batch first)")
    shapes = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
    shapes = [tuple(int(d) for d in s) for s in shapes]
    batch = shapes[0][0] if shapes and shapes[0] else None
    graph = Graph(name=gname, framework="torch", source_format="torchscript", model_class=gname, layout=LAYOUT,
                  framework_version=torch.__version__)
    builder = _Builder(graph, batch, infer=True)
    walker = _ScriptWalker(builder, batch, root=script_module)
    g = script_module.graph
    args = []
    for v, shape in zip(list(g.inputs())[1:], shapes):
        base = re.sub(r"\.\d+$", "", v.debugName()) or "input"
        args.append(builder.add_input(base, (None, *shape[1:]), "float32"))
    if walker.is_leaf(script_module) and T.key_from_qualname(_ts_qualname(script_module)):
        outs = walker.leaf(script_module, "forward", "", args)
    else:
        outs = walker.run(script_module, "forward", "", args)
    builder.finish(outs)
    graph.notes.append("read from TorchScript without running it: shapes inferred from the input shape")
    graph.notes.extend(walker.notes)
    _account(graph, builder.claimed, _held_by_fqn(script_module),
             mode="training mode" if script_module.training else "eval mode")
    return graph


__all__ = ["graph_from_module", "graph_from_exported_program", "graph_from_torchscript"]
