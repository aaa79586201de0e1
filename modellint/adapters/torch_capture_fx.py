"""PyTorch capture by ``torch.fx.symbolic_trace`` with leaf modules kept whole, shapes
propagated on meta tensors (shape and dtype, no storage): the light capture, tried
first. Usual layers and functions are sized by torch's output-size formulas
(:func:`_meta_module`, :func:`_meta_function`); a layer with weights and no rule runs
with meta stand-ins for its weights (:func:`_meta_call`); only what fails there
runs the traced graph on fake tensors. Normalisations and ``F.scaled_dot_product_attention``
are sized by rule wherever they are called (:func:`_MetaRules`), as torch runs them on meta
tensors as slow Python decompositions. See :mod:`.torch_live`.
"""

from __future__ import annotations

from .. import ops
from . import torch_ops as T
from .torch_builder import (
    STAT_BUFFERS,
    _Builder,
    _ROOT,
    _arg_names,
    _fake_inputs,
    _fetch,
    _is_leaf,
    _module_params,
    _one_line,
    _param_arg,
    _python_call,
    _qualname,
    _restructure,
    _shapes,
    _target_name,
    _traced_through,
)
from .torch_ops import TArg, _flat


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
    # the traced graph runs on its root as it is: a GraphModule would copy the root's attributes and
    # generate and compile Python code for the graph (~0.1 s for a ViT), none of which is needed here
    gm = tracer.root
    try:
        values = _propagate_meta(gm, graph, specs)
        how = "torch.fx on meta tensors (symbolic trace; shapes on storage-less meta tensors, known layers " \
              "sized by torch's output-size formulas, others run with meta stand-ins for their weights; tried " \
              "before torch.export, which costs seconds and as much memory as a forward pass to import)"
    except Exception as exc:  # a layer with weights and no shape rule, a tensor made on the CPU, ...
        values = _propagate_fake(gm, graph, specs)
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


def _propagate_fake(gm, graph, specs) -> dict:
    """{fx node: value} of one run of ``graph`` (traced from the module ``gm``) on fake tensors (real
    parameters are read as fakes)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake = _fake_inputs(specs, mode)
    interp = _recording(torch.fx.Interpreter)(gm, graph=graph)
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


def _propagate_meta(gm, graph, specs) -> dict:
    """{fx node: value} of one run of ``graph`` (traced from the module ``gm``) on meta tensors (shape
    and dtype, no storage).

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
    interp = _MetaInterp(gm, graph=graph)
    with torch.device("meta"), _MetaRules():  # tensors the forward makes (torch.zeros(x.shape)) are meta too
        interp.run(*inputs)
    return interp.values


def _ruled_functions() -> dict:
    """{torch function: name} of the functions :class:`_MetaRules` sizes inside modules."""
    import torch
    import torch.nn.functional as F

    out = {}
    for name, fns in (("batch_norm", (F.batch_norm, torch.batch_norm)),
                      ("layer_norm", (F.layer_norm, torch.layer_norm)),
                      ("group_norm", (F.group_norm, torch.group_norm)), ("rms_norm", (F.rms_norm, torch.rms_norm)),
                      ("instance_norm", (F.instance_norm, torch.instance_norm)),
                      ("scaled_dot_product_attention", (F.scaled_dot_product_attention,))):
        for fn in fns:
            out[fn] = name
    return out


def _MetaRules():
    """A ``TorchFunctionMode`` that sizes normalisations and ``F.scaled_dot_product_attention`` on meta
    tensors by :func:`_meta_function` wherever they are called (inside a leaf module run with meta
    stand-ins for its weights, timm's ``LayerNorm`` or ``BatchNormAct2d``, too): on meta tensors torch
    runs them as Python decompositions, ~5-10 ms a call, a third of reading a ViT or an EfficientNet."""
    global _RULES_MODE
    if _RULES_MODE is None:
        from torch.overrides import TorchFunctionMode

        ruled = _ruled_functions()

        class Rules(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                name = ruled.get(func)
                if name is not None:
                    out = _meta_function(name, args, kwargs)
                    if out is not None:
                        return out
                return func(*args, **kwargs)

        _RULES_MODE = Rules
    return _RULES_MODE()


_RULES_MODE = None


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
        elif fname in _NORMS:
            shape = _norm_shape(fname, args, kwargs)
        elif fname == "sdpa":
            shape = _sdpa_shape(args, kwargs)
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


_NORMS = frozenset({"batch_norm", "instance_norm", "layer_norm", "rms_norm", "group_norm"})


def _norm_shape(fname: str, args, kwargs):
    """A normalisation keeps its input's shape; None where its weights or sizes do not fit the input
    (torch then runs it, and says what is wrong)."""
    import torch

    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        return None
    shape = tuple(x.shape)
    weights = [t for t in _flat((args[1:], [v for k, v in kwargs.items() if k != "input"]))
               if isinstance(t, torch.Tensor)]
    if fname in ("layer_norm", "rms_norm"):
        norm = args[1] if len(args) > 1 else kwargs.get("normalized_shape")
        norm = (norm,) if isinstance(norm, int) else tuple(norm) if isinstance(norm, (list, tuple)) else None
        if not norm or not all(isinstance(d, int) for d in norm) or shape[len(shape) - len(norm):] != norm:
            return None
        return shape if all(tuple(w.shape) == norm for w in weights) else None
    if fname == "group_norm":
        groups = args[1] if len(args) > 1 else kwargs.get("num_groups")
        if not isinstance(groups, int) or groups < 1 or shape[1] % groups:
            return None
    return shape if all(tuple(w.shape) == (shape[1],) for w in weights) else None


def _sdpa_shape(args, kwargs):
    """``F.scaled_dot_product_attention``: (..., L, E) queries, (..., S, E) keys, (..., S, Ev) values ->
    (..., L, Ev); None for anything else (grouped-query heads, broadcast batch dims)."""
    import torch

    names = ("query", "key", "value", "attn_mask")
    q, k, v, mask = (args[i] if len(args) > i else kwargs.get(n) for i, n in enumerate(names))
    if not all(isinstance(t, torch.Tensor) and t.dim() >= 2 for t in (q, k, v)) or kwargs.get("enable_gqa"):
        return None
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]) or q.shape[-1] != k.shape[-1] \
            or k.shape[-2] != v.shape[-2]:
        return None
    out = (*q.shape[:-1], v.shape[-1])
    if mask is not None:  # it must broadcast to (..., L, S)
        target = (*q.shape[:-1], k.shape[-2])
        m = tuple(mask.shape)
        if len(m) > len(target) or any(a not in (1, b) for a, b in zip(m[::-1], target[::-1])):
            return None
    return tuple(out)
