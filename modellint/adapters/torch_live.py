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
dimension becomes ``None`` (the batch) when it equals the example batch size. The
capture follows the batch's axis from the inputs (batch first) through permutes,
reshapes and indexing, and from modules that say where it is (``batch_first=False``
RNNs and ``nn.MultiheadAttention``: ``(seq, batch, ...)``): a seq-first tensor shows
``(17, None, 64)``, and a node whose input has its batch elsewhere than dim 0 records
``attrs["batch_axis"]`` so MACs are per sample (``nn.TransformerEncoder`` on
``x.transpose(0, 1)`` counts every token), as the ONNX reader does.

Where the code is: this module chooses the capture (:func:`graph_from_module`);
:mod:`.torch_capture_fx`, :mod:`.torch_capture_export` and
:mod:`.torch_capture_hooks` are the three captures; :mod:`.torch_script` reads
TorchScript; :mod:`.torch_builder` is the graph builder they all feed and the
ledger of weights no node reads; :mod:`.torch_ops` maps modules and functions to
canonical ops.
"""

from __future__ import annotations

import gc
from typing import Optional

from ..errors import InputError
from ..graph import Graph
from . import torch_ops as T
from .torch_builder import LAYOUT, _Builder, _Spec, _account, _held_by_module, _one_line, _quiet
from .torch_capture_export import _capture_export
from .torch_capture_fx import _capture_fx
from .torch_capture_hooks import _capture_hooks
from .torch_capture_export import graph_from_exported_program  # noqa: F401 - public here too
from .torch_script import graph_from_torchscript  # noqa: F401 - public here too

CAPTURES = ("export", "fx", "hooks")
AUTO = ("fx", "export", "hooks")  # capture="auto": the light capture first (see graph_from_module)


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
    attempts = [(c, "fake") for c in order]
    if "hooks" in order:  # hooks on meta tensors before export (auto) and fake ones; a real forward last
        attempts.insert(attempts.index(("hooks", "fake")) if capture != "auto" else 1, ("hooks", "meta"))
        attempts.append(("hooks", "real"))
    collecting = gc.isenabled()
    try:
        # The capture allocates many small objects (fx nodes, proxies, meta tensors), enough to set off
        # CPython's cyclic collector, whose full passes walk every object of the process: with torch
        # and timm imported, ~350k of them, and in a forked process (bench_zoo) each pass also copies
        # the pages it touches. That was half of the reading time of a ViT or an EfficientNet. Nothing
        # here needs cycles freed during the capture, so the collector waits until it returns (its
        # next pass then sees the capture's garbage, young objects, not the whole heap again).
        gc.disable()
        module.eval()
        for method, tensors in attempts:
            graph = Graph(name=gname, framework="torch", source_format="live", model_class=type(module).__name__,
                          layout=LAYOUT, framework_version=torch.__version__)
            builder = _Builder(graph, batch, reserved=reserved)
            try:
                with _quiet():
                    if method == "hooks":
                        how = _capture_hooks(module, specs, builder, live, tensors=tensors)
                    else:
                        how = {"export": _capture_export, "fx": _capture_fx}[method](module, specs, builder, live)
            except Exception as exc:
                label = {"export": "torch.export", "fx": "torch.fx", "hooks": "forward hooks"}[method]
                kind = f" ({tensors} tensors)" if method == "hooks" else ""
                failures.append(f"{label}{kind} failed: {_one_line(exc)}")
                continue
            graph.notes.insert(0, f"captured with {how}" + (f": {'; '.join(failures)}" if failures else ""))
            _account(graph, builder.claimed, _held_by_module(module))
            return graph
        raise InputError(gname, "could not capture the module: " + "; ".join(failures))
    finally:
        for m, flag in flags:
            m.training = flag
        if collecting:
            gc.enable()


__all__ = ["graph_from_module", "graph_from_exported_program", "graph_from_torchscript"]
