"""TorchScript modules (``torch.jit.load``) -> Graph, read without running them: the
module hierarchy is walked through its method graphs and shapes are inferred from
the given input shape (:func:`graph_from_torchscript`).
"""

from __future__ import annotations

import operator
import re
from typing import Optional

from ..errors import InputError
from ..graph import Graph
from . import torch_ops as T
from .torch_builder import (
    LAYOUT,
    STAT_BUFFERS,
    _Builder,
    _account,
    _derived,
    _held_by_fqn,
    _module_params,
    _one_line,
    _param_arg,
    _passed,
)
from .torch_ops import Call, TArg, _flat


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
