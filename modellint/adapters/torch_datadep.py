"""Data-dependent ops on meta tensors, for the forward-hooks capture on meta tensors.

A meta tensor has a shape and a dtype but no values, so an op whose output *size*
depends on the values (``nonzero`` / ``torch.where(mask)``, boolean indexing,
``masked_select``, ``unique``, torchvision's ``nms``) has no meta kernel. A
detection model's post-processing is made of them (score thresholds, NMS, top-k
of what survives). :class:`DataDependent` is a ``TorchDispatchMode`` that gives each
of them a meta output of a stated size and marks it *data-dependent*; every tensor
computed from a marked one is marked too (:meth:`DataDependent.marked`). The
capture then records a marked tensor's leading dimension, the number of boxes,
detections or proposals in torchvision's and most detection code, as ``None``:
its size is not a property of the model.

Sizes chosen: every element kept (``nonzero``, boolean masks, ``nms``), the upper
bound, so that every branch of the post-processing runs (an empty result would
take the early returns); ``unique`` gives one value (a loop over the classes
present runs once). Nothing is ever computed: the tensors are meta.

Ops are recognised by name (``aten::nonzero``, ``torchvision::nms``); this module
does not import torchvision.

Some post-processing is not an op but a Python loop over the boxes that reads sizes
from the values (``int(box[2] - box[0])``, ``.item()``), which no meta tensor can
answer: torchvision's ``paste_masks_in_image`` (Mask R-CNN: each box's mask resized
to the box and pasted into an image-sized canvas) and ``heatmaps_to_keypoints``
(Keypoint R-CNN: each box's heatmaps resized to the box, their argmax). :func:`folded`
swaps such a helper, found by its name and parameters among the globals of the
modules that define the model's classes, for one call whose output has a stated size
(:data:`FOLDED`): the capture records it as one node, and it runs once instead of
once per box.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys

_DATA_DEPENDENT = frozenset({"aten::nonzero", "aten::argwhere", "aten::masked_select", "aten::_unique2",
                             "aten::unique_dim", "aten::unique_consecutive", "aten::_unique",
                             "torchvision::nms", "torchvision::qnms"})


def _bool_index(t) -> bool:
    import torch

    return isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)


def _mode_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class DataDependent(TorchDispatchMode):
        """Meta outputs for data-dependent ops, and the set of tensors computed from one."""

        def __init__(self):
            super().__init__()
            self._marked: dict = {}  # id -> tensor (kept alive so that ids stay unique)
            self.ops: dict = {}  # op name -> calls given a stated size

        def marked(self, t) -> bool:
            return id(t) in self._marked

        def mark(self, t) -> None:
            self._mark(t)

        def _mark(self, out):
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.dim() >= 1:
                    self._marked[id(t)] = t

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func._schema.name if hasattr(func, "_schema") else str(func)
            leaves = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            meta = any(t.is_meta for t in leaves)
            out = None
            stated = False
            if meta:
                out = self._stated(name, func, args, kwargs)
                stated = out is not None
            if out is None:
                out = func(*args, **kwargs)
            if stated:
                self.ops[name] = self.ops.get(name, 0) + 1
            if stated and name != "aten::index_put" and not func._schema.is_mutable:
                self._mark(out)
            elif self._marked and any(id(t) in self._marked for t in leaves):
                mutable = getattr(func, "_schema", None) is not None and func._schema.is_mutable
                if not mutable or (args and id(args[0]) in self._marked):  # x[i] = v keeps x's size
                    self._mark(out)
            return out

        def _stated(self, name, func, args, kwargs):  # noqa: C901 - one rule per op
            def empty(shape, dtype=torch.long):
                return torch.empty(tuple(int(d) for d in shape), dtype=dtype, device="meta")

            if name in ("aten::nonzero", "aten::argwhere"):
                x = args[0]
                return empty((x.numel(), x.dim()))
            if name == "aten::masked_select":
                x, mask = args[0], args[1]
                return empty((torch.broadcast_shapes(x.shape, mask.shape).numel(),), x.dtype)
            if name in ("torchvision::nms", "torchvision::qnms"):
                return empty((args[0].shape[0],))
            if name in ("aten::_unique2", "aten::_unique", "aten::unique_consecutive", "aten::unique_dim"):
                x = args[0]
                n = min(x.numel(), 1)
                inverse = kwargs.get("return_inverse", args[2] if len(args) > 2 else False)
                counts = kwargs.get("return_counts", args[3] if len(args) > 3 else False)
                if name == "aten::_unique":
                    return empty((n,), x.dtype), empty(x.shape if inverse else (0,))
                if name == "aten::unique_dim":
                    return None
                return empty((n,), x.dtype), empty(x.shape if inverse else (0,)), empty((n,) if counts else (0,))
            if name in ("aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"):
                indices = args[1] if len(args) > 1 else kwargs.get("indices")
                if not indices or not any(_bool_index(i) for i in indices):
                    return None
                spread = []
                for i in indices:
                    if _bool_index(i):  # a mask of k dims selects numel(mask) positions, k index tensors
                        spread.extend([empty((i.numel(),))] * i.dim())
                    else:
                        spread.append(i)
                return func(args[0], spread, *args[2:], **kwargs)  # x[mask] = v: x keeps its size
            return None

    return DataDependent


_CLASS = None


def data_dependent_mode():
    """A fresh :class:`DataDependent` dispatch mode (the class is made on first use: it needs torch)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _mode_class()
    return _CLASS()


def _paste_masks(masks, boxes, img_shape, padding=1):
    """``paste_masks_in_image``: (boxes, 1, M, M) masks -> (boxes, 1, image height, image width)."""
    im_h, im_w = (int(v) for v in img_shape)
    return masks.new_empty((masks.shape[0], 1, im_h, im_w))


def _heatmaps_to_keypoints(maps, rois):
    """``heatmaps_to_keypoints``: (boxes, keypoints, H, W) heatmaps -> (boxes, keypoints, 3) x, y, visibility
    and (boxes, keypoints) scores."""
    k, n = maps.shape[0], maps.shape[1]
    return maps.new_empty((k, n, 3)), maps.new_empty((k, n))


# helper name -> (its parameters, the rule that makes its output on meta tensors)
FOLDED = {
    "paste_masks_in_image": (("masks", "boxes", "img_shape", "padding"), _paste_masks),
    "heatmaps_to_keypoints": (("maps", "rois"), _heatmaps_to_keypoints),
}


def _params(fn) -> tuple:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


@contextlib.contextmanager
def folded(modules, fold):
    """While in the block, each helper of :data:`FOLDED` among the globals of the Python modules that
    define ``modules``' classes calls ``fold(helper, rule, args, kwargs)`` instead where it is given
    a meta tensor (the capture runs ``rule`` and records one node); restored on exit."""
    import torch
    from torch.utils._pytree import tree_leaves

    patched = []
    seen: set = set()
    for m in modules:
        ns = sys.modules.get(type(m).__module__)
        if ns is None or id(ns) in seen:
            continue
        seen.add(id(ns))
        for name, (params, rule) in FOLDED.items():
            fn = ns.__dict__.get(name)
            if not inspect.isfunction(fn) or fn.__name__ != name or _params(fn) != params:
                continue

            def call(*args, __fn=fn, __rule=rule, **kwargs):
                if not any(isinstance(t, torch.Tensor) and t.is_meta for t in tree_leaves((args, kwargs))):
                    return __fn(*args, **kwargs)
                return fold(__fn, __rule, args, kwargs)

            patched.append((ns, name, fn))
            setattr(ns, name, functools.wraps(fn)(call))
    try:
        yield [f"{ns.__name__}.{name}" for ns, name, _ in patched]
    finally:
        for ns, name, fn in reversed(patched):
            setattr(ns, name, fn)
