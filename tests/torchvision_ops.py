"""Pure-Python stand-ins for torchvision's C++ ops, so ``import torchvision`` works
where its compiled extension does not load.

torchvision's wheels on PyPI are built against a CUDA torch; with a CPU-only torch
their ``_C`` extension fails to load and ``import torchvision`` then stops at
``torch.library.register_fake("torchvision::nms")``: "operator torchvision::nms
does not exist". :func:`install` defines the ops that torchvision's Python code
registers unconditionally (``nms`` and ``qnms``) with :mod:`torch.library`, with
a plain greedy NMS as their CPU kernel, before torchvision is imported. The other
ops (``roi_align``...) are registered by torchvision only when its extension
loaded, and ``roi_align`` has its own Python fallback. The model zoos' classifiers
and segmenters need none of them.

Detection models need ``nms`` and ``roi_align`` to run, and torchvision's Python
wrappers refuse to call them while its extension is missing (``_assert_has_ops``).
:func:`enable_detection` (after the import) defines ``roi_align`` with torchvision's
own pure-Python reference as its CPU kernel and a shape-only fake kernel (as
torchvision's ``_meta_registrations`` does when the extension loads), and lets the
wrappers call the stand-ins, as a working install would. It changes torchvision's
``_has_ops`` flags in this process only.

Used by ``benchmarks/bench_zoo.py`` and the zoo tests (``tests/test_torch_zoo.py``).
"""

from __future__ import annotations

_LIB = None


def _nms(dets, scores, iou_threshold: float):
    """Greedy non-maximum suppression: indices of the boxes kept, best score first."""
    import torch

    order = torch.argsort(scores, descending=True)
    keep = []
    x1, y1, x2, y2 = dets.unbind(1)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for i_pos in range(len(order)):
        i = order[i_pos]
        if suppressed[i_pos]:
            continue
        keep.append(int(i))
        rest = order[i_pos + 1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area[rest] - inter)
        suppressed[i_pos + 1:] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def install() -> bool:
    """Define ``torchvision::nms`` / ``qnms`` where torchvision's extension did not; True if it did anything.

    Call before ``import torchvision``. Does nothing when the ops exist (a
    torchvision whose extension loads, or a second call).
    """
    global _LIB
    import torch

    try:
        torch.ops.torchvision.nms.default  # noqa: B018 - exists: the real extension (or us) defined it
        return False
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CompositeExplicitAutograd")
    lib.impl("qnms", lambda d, s, t: _nms(d.dequantize(), s.dequantize(), t), "CompositeExplicitAutograd")
    _LIB = lib  # the library object must outlive this call, or the ops are removed again
    return True


def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    return input.new_empty((rois.size(0), input.size(1), pooled_height, pooled_width))


def enable_detection() -> bool:
    """Make torchvision's detection models runnable on the stand-ins (call after :func:`import_torchvision`).

    True if anything was changed (False where the real extension loaded)."""
    import importlib

    import torch

    ext = importlib.import_module("torchvision.extension")
    ra = importlib.import_module("torchvision.ops.roi_align")  # the module (torchvision.ops.roi_align is a function)

    if ext._has_ops():
        return False
    global _DET_LIB
    if _DET_LIB is None:
        reference = getattr(ra._roi_align, "__wrapped__", ra._roi_align)  # not torch.compile'd
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                   "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
        lib.impl("roi_align", reference, "CPU")
        torch.library.register_fake("torchvision::roi_align", _roi_align_fake, lib=lib)
        _DET_LIB = lib
    ext._has_ops = lambda: True  # _assert_has_ops reads this one at call time
    ra._has_ops = lambda: True  # roi_align's own import of it: call the op, not the compiled fallback
    return True


_DET_LIB = None


def import_torchvision():
    """``import torchvision`` after :func:`install`; raises ImportError where it cannot be imported."""
    try:
        install()
    except Exception as exc:  # noqa: BLE001 - torch without torch.library, ...
        raise ImportError(f"torchvision stand-in ops: {exc}") from exc
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - RuntimeError from a broken extension, ...
        raise ImportError(f"torchvision does not import: {type(exc).__name__}: {exc}") from exc
    return torchvision
