"""PyTorch capture by forward hooks on every module plus a ``TorchFunctionMode`` that
records the functions called between leaf modules: on meta tensors (shape and
dtype, no storage; the module's weights swapped for meta stand-ins with
``torch.func.functional_call`` where they are real; data-dependent ops such as
``nonzero`` and torchvision's ``nms`` given a stated size by
:mod:`.torch_datadep`, and what is computed from them recorded with a leading
``None``), on fake tensors, or (the last resort, for data-dependent control flow)
on a real, random, seeded input under ``torch.no_grad()``. See :mod:`.torch_live`.
"""

from __future__ import annotations

import contextlib

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


def _meta_state(module):
    """``({name: meta stand-in}, {id(stand-in): the module's own tensor})`` for every parameter
    and buffer that is not on the meta device already (one stand-in per tensor: tied weights
    stay tied); empty where the whole module is on meta."""
    import torch

    state: dict = {}
    standins: dict = {}
    back: dict = {}
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    if all(t is None or t.is_meta for _, t in named):
        return {}, {}
    for name, t in named:
        if t is None:
            continue
        s = standins.get(id(t))
        if s is None:
            s = torch.empty(tuple(t.shape), dtype=t.dtype, device="meta", requires_grad=t.requires_grad)
            standins[id(t)] = s
            back[id(s)] = t
        state[name] = s
    return state, back


def _capture_hooks(module, specs, builder: _Builder, live: dict, tensors: str = "fake") -> str:
    """``tensors``: ``"meta"``, ``"fake"`` or ``"real"`` (see the module docstring)."""
    import torch
    from torch.overrides import TorchFunctionMode

    meta = tensors == "meta"
    fake = tensors == "fake"
    state_, back = _meta_state(module) if meta else ({}, {})
    datadep = None
    if meta:
        from .torch_datadep import data_dependent_mode

        datadep = data_dependent_mode()

    def shape(t):
        if datadep is not None and t.dim() >= 1 and datadep.marked(t):
            return (None, *t.shape[1:])
        return tuple(t.shape)

    paths = {id(m): p for p, m in live.items()}
    owned = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        owned.setdefault(id(p), _param_arg(name, p, key=id(p), is_param=True))
    for name, b in module.named_buffers(remove_duplicate=False):
        if b is not None and id(b) not in owned:
            is_stat = name.rsplit(".", 1)[-1] in STAT_BUFFERS
            owned[id(b)] = _param_arg(name, b, key=id(b), is_param=False) if is_stat else TArg("const", tuple(b.shape))
    for sid, t in back.items():  # the stand-ins read as the tensors they stand for
        if id(t) in owned:
            owned[sid] = owned[id(t)]
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
            outs = [t for t in _flat(out) if isinstance(t, torch.Tensor)]
            if datadep is not None:  # made from a Python int (torch.zeros(len(rois), ...)): still one per box
                lead = {t.shape[0] for t in _flat((args, kwargs))
                        if isinstance(t, torch.Tensor) and t.dim() >= 1 and datadep.marked(t)}
                for t in outs:
                    if t.dim() >= 1 and t.shape[0] in lead:
                        datadep.mark(t)
            params = _module_params(sub, path)
            for p in params:  # a stand-in's key is the module's own tensor's
                if p.key in back:
                    p.key = id(back[p.key])
            refs = builder.module_call(path, sub, _qualname(sub), a, kw, [shape(t) for t in outs], params)
            for t, r in zip(outs, refs):
                register(t, r)

    def record(func, args, kwargs, out):
        outs = [t for t in _flat(out) if isinstance(t, torch.Tensor)]
        if not outs:
            return
        scope = state["scope"][-1] if state["scope"] else ""
        bound = []
        _python_call(func, False, mapped(list(args)), mapped(dict(kwargs)), out, builder, scope,
                     bound.append, shapes=[shape(t) for t in outs] if datadep is not None else None)
        res = bound[0] if bound else None
        flat = [r for r in _flat(res)] if isinstance(res, (list, tuple)) else [res] * len(outs)
        for t, r in zip(outs, flat):
            if isinstance(r, TArg):
                register(t, r)

    class _Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if state["on"] and state["depth"] == 0:
                if func is torch.Tensor.__setitem__ and args and isinstance(args[0], torch.Tensor):
                    record(func, args, kwargs, args[0])  # x[i] = v: x is a new value from here on
                else:
                    record(func, args, kwargs, out)
            return out

    def fold(func, rule, args, kwargs):
        """A folded helper (:data:`.torch_datadep.FOLDED`): its stated output, one node."""
        on = state["on"]
        state["on"] = False  # the rule's own calls are not the model's
        try:
            out = rule(*args, **kwargs)
        finally:
            state["on"] = on
        if any(isinstance(t, torch.Tensor) and t.dim() >= 1 and datadep.marked(t) for t in _flat((args, kwargs))):
            datadep.mark(out)  # one row per box, as its input
        if on and state["depth"] == 0:
            record(func, args, kwargs, out)
        folds_run[func.__name__] = folds_run.get(func.__name__, 0) + 1
        return out

    folds_run: dict = {}

    calls: dict = {}
    handles = []
    for m in live.values():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    try:
        if meta:
            inputs = [torch.empty(spec.shape, dtype=spec.dtype, device="meta") for spec in specs]
        elif fake:
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
        folds = contextlib.nullcontext()
        if datadep is not None:
            from .torch_datadep import folded

            folds = folded(live.values(), fold)
        with ctx, (datadep if datadep is not None else contextlib.nullcontext()), folds:
            state["on"] = True
            with _Recorder():
                out = torch.func.functional_call(module, state_, tuple(inputs)) if state_ else module(*inputs)
            state["on"] = False
        builder.trace_through(live, calls)
        builder.finish([values.get(id(t)) for t in _flat(out) if isinstance(t, torch.Tensor)])
    finally:
        state["on"] = False
        for h in handles:
            h.remove()
    pruned = _prune(builder.g)
    if tensors == "real":
        builder.g.notes.append("the graph follows the branches that one random input took")
    if datadep is not None and datadep.ops:
        done = ", ".join(f"{k.split('::')[-1]} ({v}x)" for k, v in sorted(datadep.ops.items()))
        builder.g.notes.append(
            f"data-dependent sizes: {done} select a number of elements that depends on the values, so every "
            "tensor computed from them has its leading size (boxes, detections) recorded as None; the capture "
            "ran them on meta tensors as if every element were kept (nms: none suppressed; unique: one value)")
    if folds_run:
        done = ", ".join(f"{k} ({v}x)" for k, v in sorted(folds_run.items()))
        builder.g.notes.append(
            f"folded: {done} loop over the boxes reading sizes from their values (.item()), which meta tensors do "
            "not have; each call is one node whose output has a stated size (one row per box)")
    if pruned:
        builder.g.notes.append(f"{pruned} calls whose results reach no output were dropped")
    if meta:
        return "forward hooks on meta tensors (no activation and no weight allocated" + \
            ("; the weights swapped for meta stand-ins by torch.func.functional_call)" if state_ else ")")
    return "forward hooks on fake tensors" if fake else \
        "forward hooks on a real forward pass (random input, seed 0, no_grad)"
