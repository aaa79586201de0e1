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
