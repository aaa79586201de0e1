"""PyTorch capture by forward hooks on every module plus a ``TorchFunctionMode`` that
records the functions called between leaf modules: on fake tensors, or (the last
resort, for data-dependent control flow) on a real, random, seeded input under
``torch.no_grad()``. See :mod:`.torch_live`.
"""

from __future__ import annotations

from .torch_builder import (
    STAT_BUFFERS,
    _Builder,
    _arg_names,
    _fake_inputs,
    _is_leaf,
    _module_params,
    _param_arg,
    _prune,
    _python_call,
    _qualname,
    _traced_through,
)
from .torch_ops import TArg, _flat


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
