"""The graph builder every PyTorch capture feeds (:class:`_Builder`), the ledger of
weights no node reads, and the helpers the captures share (:func:`_python_call` for
functions between leaf modules, :func:`_is_leaf`, parameter arguments, ``_quiet``).

The captures themselves: :mod:`.torch_capture_fx` (torch.fx on meta tensors),
:mod:`.torch_capture_export` (torch.export, and ``.pt2`` programs),
:mod:`.torch_capture_hooks` (forward hooks), :mod:`.torch_script` (TorchScript);
:mod:`.torch_live` chooses among them (its docstring tells the whole story).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
import weakref
from typing import Optional

from .. import ops
from ..graph import FeaturesLast, Graph, Node
from . import torch_ops as T
from .common import infer_node
from .torch_ops import Call, TArg, _flat

STAT_BUFFERS = ("running_mean", "running_var")
_ROOT = "modellint_root"
LAYOUT = "channels_first"


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
        # where the example batch is: activation ref -> axis of its (source) shape, None where not known;
        # node name -> (axis in its first input, [axis in each output], traced output shapes)
        self.bax: dict = {}
        self.node_bax: dict = {}

    # -- shapes -----------------------------------------------------------
    def batched(self, shape, axis=None):
        """A traced shape with the example batch size as None (still in the source layout): at
        ``axis``, where the capture followed the batch there (a ``(seq, batch, dim)`` tensor: 1),
        else at dim 0."""
        if shape is None:
            return None
        shape = tuple(None if d is None else int(d) for d in shape)
        if isinstance(axis, int) and 0 <= axis < len(shape) and self.batch is not None and shape[axis] == self.batch:
            return (*shape[:axis], None, *shape[axis + 1:])
        if shape and self.batch is not None and shape[0] == self.batch:
            shape = (None, *shape[1:])
        return shape

    def canon(self, shape, lay=None, axis=None):
        """A source shape as stored: features-last ones as they are, others channels-last."""
        shape = self.batched(shape, axis)
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
        # input shapes are batch first (input_shape=, example_inputs)
        self.bax[node.name] = 0 if shape is not None and len(shape) and shape[0] == self.batch else None
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
        call.batch = None if self.infer else self.batch  # traced sizes: a None is data-dependent, not the batch
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
        if not self.infer:
            self._track_batch(node, call, acts)
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

    def _track_batch(self, node: Node, call: Call, acts: list) -> None:
        """Follow the example batch's axis from the inputs to each output (:func:`_batch_axes`);
        :meth:`finish` records it on the node (``attrs["batch_axis"]``, where it is not 0, for
        MACs per sample, as the ONNX reader does) and shows the batch as None there."""
        outs = list(call.out_shapes or [])
        known = [(self.bax.get(t.ref), t) for t in acts if isinstance(self.bax.get(t.ref), int) and t.shape]
        first = self.bax.get(acts[0].ref) if acts else None
        src = known[0] if known else (None, None)
        in_axis, out_axes = _batch_axes(node, call, first, acts[0].shape if acts else None, src[0],
                                        src[1].shape if src[1] is not None else None, outs, self.batch)
        for i, ax in enumerate(out_axes):
            self.bax[node.name if i == 0 else f"{node.name}:{i}"] = ax
        self.node_bax[node.name] = (in_axis, out_axes, outs, acts[0].shape if acts else None)

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
            in_axis, out_axes, traced, _ = self.node_bax.get(name, (None, [], [], None))
            shapes = []
            for i, s in enumerate(node.output_shapes):
                lay = lays[i] if i < len(lays) else None
                ax = out_axes[i] if i < len(out_axes) else None
                if isinstance(ax, int) and ax != 0 and i < len(traced) and traced[i] is not None:
                    s = traced[i]  # the batch shown where it is: (seq, None, dim)
                shapes.append(self.canon(s, lay, ax))
            node.output_shapes = shapes
            if any(isinstance(s, FeaturesLast) for s in shapes):
                node.attrs["layout"] = T.FL
        self._record_batch_axes()
        self.adopt()
        return self.g

    def _record_batch_axes(self) -> None:
        """``attrs["batch_axis"]`` (where it is not 0), read by :func:`modellint.ops.count_macs` for
        MACs per sample, as the ONNX reader records it; and ``attrs["traced_sizes"]``: ``[(axis,
        size)]``, input dims shown as the batch (None) that the node reads as data (a time-major
        RNN called on the batch-first graph input: ML906)."""
        for name, node in self.g.nodes.items():
            in_axis, _, _, raw = self.node_bax.get(name, (None, [], [], None))
            node.attrs.pop("traced_sizes", None)
            if not isinstance(in_axis, int) or in_axis == 0 or ops.spec(node.op).macs is ops._macs_none \
                    or not node.inputs or raw is None:
                continue
            stored = self.g.shape_of(node.inputs[0])
            if stored is None or len(stored) != len(raw) or in_axis >= len(raw):
                continue
            if not (ops.spec(node.op).source_axes or isinstance(stored, FeaturesLast) or len(stored) < 3):
                continue  # a channels-first map stored channels last: its axes are not the source's
            node.attrs["batch_axis"] = in_axis
            sizes = [(i, int(raw[i])) for i, d in enumerate(stored) if d is None and i != in_axis
                     and raw[i] is not None]
            if sizes:
                node.attrs["traced_sizes"] = sizes

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


def _batch_axes(node: Node, call: Call, first, first_shape, axis, shape, outs: list, batch) -> tuple:
    """``(axis of the batch in the node's first input, [axis in each output])``, None where not known.

    ``first``: the batch axis of the first input as followed so far; ``axis`` / ``shape``: that of
    the first input whose batch axis is known, and its traced shape. A module that says where
    its batch is (``batch_first`` of an RNN or ``nn.MultiheadAttention``: ``(seq, batch, ...)`` when
    False) decides for itself; a permute moves the axis; other calls keep it where the output
    has the input's dims around it (same rank and size there; dims dropped or inserted
    elsewhere: an index, a reduction, ``unsqueeze``; a reshape keeping the dims before it)."""
    if node.op in ("rnn", "attention") and isinstance(node.attrs.get("batch_first"), bool) \
            and first_shape is not None and len(first_shape) == 3:
        ax = 0 if node.attrs["batch_first"] else 1
        if isinstance(first, int) and first != ax:  # called on the batch at another axis (ML906): the
            return ax, [None] * len(outs)  # layer counts by its own layout, what follows as before
        # an RNN's states (h_n, c_n) are (layers * directions, batch, hidden); attention weights batch first
        rest = 1 if node.op == "rnn" else 0
        return ax, [ax if i == 0 else rest for i in range(len(outs))]
    if axis is None or shape is None or batch is None:
        return None, [None] * len(outs)
    perm = None
    if call.name in T.PERMUTES:
        try:
            perm = list(T.permutation(call))
        except Exception:
            perm = None
    elif node.op in ("permute", "transpose") and node.attrs.get("dims"):
        dims = list(node.attrs["dims"])
        perm = dims if node.op == "transpose" else [0, *dims]
    out_axes = []
    for out in outs:
        ax = None
        if out is not None:
            if perm is not None and sorted(perm) == list(range(len(shape))) and len(out) == len(shape):
                ax = perm.index(axis)
            else:
                ax = _follow_axis(tuple(shape), axis, tuple(out))
            if ax is not None and not (0 <= ax < len(out) and out[ax] == batch):
                ax = None
        out_axes.append(ax)
    return (first if isinstance(first, int) else None), out_axes


def _follow_axis(src: tuple, axis: int, out: tuple):
    """Where dim ``axis`` of ``src`` is in ``out`` (see :func:`_batch_axes`), or None."""
    if len(out) == len(src) and out[axis] == src[axis] and out[:axis] == src[:axis]:
        return axis
    if len(out) == len(src) and out[axis] == src[axis]:
        return axis  # an element-wise op, a layer on the last dim, a matmul...
    if len(out) != len(src) and max(len(out), len(src)) <= 8:
        from itertools import combinations

        small, big = (out, src) if len(out) < len(src) else (src, out)
        found = []
        for gone in combinations(range(len(big)), len(big) - len(small)):
            kept = [i for i in range(len(big)) if i not in gone]
            if tuple(big[i] for i in kept) != small:
                continue
            if len(out) < len(src):  # dims dropped: an index, a reduction, squeeze
                if axis in kept:
                    found.append(kept.index(axis))
            else:  # dims inserted: unsqueeze, stack
                found.append(kept[axis])
        if found:
            return found[0]
    before = 1
    for d in src[:axis]:
        before *= d or 0
    at = 1
    for j, d in enumerate(out):  # a reshape that keeps the dims before the batch
        if at == before and d == src[axis]:
            return j
        at *= d or 0
    return None


def _seen(acts) -> list:
    return [T.FL if t.lay is not None and t.lay.value == T.FL else T.CF for t in acts]


def _out_layouts(node: Node, call: Call, acts: list, sources: list) -> list:
    """The :class:`~.torch_ops.Layout` of each output of a node, linked to its inputs'."""
    first = acts[0] if acts else None
    out = []
    for i, shape in enumerate(sources):
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
            raw = call.out_shapes[i] if call.out_shapes and i < len(call.out_shapes) else None  # batch as traced
            lay.resolve(T.reshaped(first.shape, first.lay.value, shape if raw is None else tuple(raw),
                                   first.lay.axis))
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

    before = dict(module.__dict__)  # a forward that caches on first call (torchvision's
    try:  # MultiScaleRoIAlign sets self.scales) must not keep what it cached from proxies
        with _quiet():
            torch.fx.Tracer().trace(module)
        ok = True
    except Exception:  # data-dependent control flow, an untraceable builtin, ...
        ok = False
    finally:
        for k in [k for k in module.__dict__ if k not in before]:
            del module.__dict__[k]
        module.__dict__.update(before)
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


def _python_call(target, is_method: bool, args, kwargs, val, builder: _Builder, scope: str, bind, rebind=None,
                 shapes=None):
    """A function or Tensor method between leaf modules (fx and hooks captures); ``shapes``:
    the output shapes where they are not those of ``val``'s tensors (a data-dependent size: None)."""
    import torch

    raw = target if is_method else _target_name(target)
    if raw in ("getitem",) and isinstance(args[0], (list, tuple)):
        idx = args[1]
        bind(args[0][idx] if isinstance(idx, int) and idx < len(args[0]) else None)
        return
    shapes = _shapes(val) if shapes is None else shapes
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


def _arg_names(module, n: int) -> list:
    import inspect

    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = params[:n]
    return names + [f"input_{i}" for i in range(len(names), n)]


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
