"""PyTorch capture by ``torch.export.export`` (non-strict): the ATen ops of one forward
pass, each tagged with the module call it came from (``nn_module_stack``); also reads
saved exported programs (``.pt2``, :func:`graph_from_exported_program`).
See :mod:`.torch_live` for when this capture is used.
"""

from __future__ import annotations

import operator
from typing import Optional

from ..graph import Graph
from . import torch_ops as T
from .torch_builder import (
    LAYOUT,
    _Builder,
    _account,
    _derived,
    _dtype,
    _held_by_program,
    _is_leaf,
    _module_params,
    _param_arg,
    _passed,
    _qualname,
    _quiet,
    _shapes,
    _target_name,
)
from .torch_ops import Call, TArg, _flat

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
