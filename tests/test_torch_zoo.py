"""Issue 12: models of the public zoos (torchvision, timm) read exactly.

A CI-sized sample of benchmarks/bench_zoo.py, each model built on the meta device:
the graph's total and trainable parameters are what the module holds, its output
shapes are those of the module's own forward pass, and no node is unknown.
Skipped where torchvision or timm is not installed (they are not dependencies);
torchvision's wheels need a CUDA torch, so ``tests/torchvision_ops.py`` registers
stand-ins for its C++ ops before it is imported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("torchvision") is None:  # importing it needs the stand-ins (the fixture)
    pytest.skip("torchvision is not installed", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def zoo():
    from torchvision_ops import import_torchvision

    try:
        import_torchvision()
    except ImportError as exc:
        pytest.skip(str(exc))
    import bench_zoo

    return bench_zoo


TORCHVISION = [
    ("googlenet", (1, 3, 224, 224)),  # auxiliary classifiers skipped in eval mode: on the ledger
    ("inception_v3", (1, 3, 299, 299)),
    ("convnext_tiny", (1, 3, 224, 224)),  # Permute, LayerNorm2d, StochasticDepth
    ("swin_t", (1, 3, 224, 224)),  # shifted_window_attention, _patch_merging_pad
    ("shufflenet_v2_x0_5", (1, 3, 224, 224)),  # chunk
    ("vit_b_32", (1, 3, 224, 224)),
]
TIMM = [
    ("vit_dlittle_patch16_reg1_gap_256", (1, 3, 256, 256)),  # parameters read directly in forward
    ("tf_efficientnet_b0", (1, 3, 224, 224)),  # Conv2dSame
    ("convnext_atto", (1, 3, 224, 224)),  # timm's LayerNorm2d
    ("pit_xs_224", (1, 3, 224, 224)),  # unbind, F.scaled_dot_product_attention
]


def check(zoo, family, name, size):
    from modellint.adapters.torch_live import graph_from_module

    model = zoo.build(family, name)
    total, trainable, _ = zoo.expected_params(model)
    g = graph_from_module(model, input_shape=size, name=name)
    assert (g.total_params, g.trainable_params) == (total, trainable)
    assert zoo.graph_shapes(g) == zoo.reference_shapes(model, size)
    assert [n.name for n in g if n.op == "unknown"] == []
    return g


@pytest.mark.parametrize("name,size", TORCHVISION, ids=[n for n, _ in TORCHVISION])
def test_torchvision(zoo, name, size):
    g = check(zoo, "torchvision", name, size)
    if name == "googlenet":
        assert [e.name for e in g.ledger] == ["aux1", "aux2"]
        assert sum(e.params for e in g.ledger) == 6_379_984 + 4 * 128  # + the aux BatchNorms' statistics
        assert any(n.startswith("not reached in eval mode: aux1 (3.2 M params), aux2 (3.2 M params)")
                   for n in g.notes), g.notes
    if name == "swin_t":
        assert sum(n.op == "window_attention" for n in g) == 12


@pytest.mark.parametrize("name,size", TIMM, ids=[n for n, _ in TIMM])
def test_timm(zoo, name, size):
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    g = check(zoo, "timm", name, size)
    if name == "tf_efficientnet_b0":
        assert any(n.op == "conv" and n.attrs.get("padding") == "same" for n in g)
    assert not g.ledger


DETECTION = ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn", "maskrcnn_resnet50_fpn"]


@pytest.mark.parametrize("name", DETECTION)
def test_detection_on_meta(zoo, name):
    """Detection models (data-dependent post-processing: score thresholds, NMS) are read by
    forward hooks on meta tensors: no activation, exact totals, the box count as None."""
    from torchvision import models
    from torchvision_ops import enable_detection

    from modellint.adapters.torch_live import graph_from_module

    enable_detection()  # the stand-ins let torchvision's wrappers call nms / roi_align, as a working install does
    with torch.device("meta"):
        model = models.get_model(name, weights=None, weights_backbone=None)
    total, trainable, _ = zoo.expected_params(model)
    g = graph_from_module(model, input_shape=(1, 3, 320, 320), name=name)
    assert g.notes[0].startswith("captured with forward hooks on meta tensors"), g.notes[0]
    assert (g.total_params, g.trainable_params) == (total, trainable)
    assert all(p.is_meta for p in model.parameters())  # nothing was ever materialised
    shapes = [g.display_shape(g.shape_of(r)) for r in g.outputs]
    assert shapes[:3] == [(None, 4), (None,), (None,)]  # boxes, scores, labels
    assert any(n.startswith("data-dependent sizes:") and "nms" in n for n in g.notes), g.notes
    # cat / split / comparisons along the box axis (a data-dependent None, not the batch) are known ops
    assert [n.name for n in g if n.op == "unknown"] == []
    assert any(n.op == "nms" for n in g)  # SSD's batched NMS reaches the outputs through keep_mask[i] = True
    if name.startswith("maskrcnn"):  # the mask paste loop (.item() per box) is one node with a stated size
        assert shapes[3] == (None, 1, 320, 320)  # one image-sized mask per detection
        assert [n.op for n in g if n.op == "paste_masks"] == ["paste_masks"]
    if name.startswith("fasterrcnn"):
        assert sum(n.op == "nms" for n in g) == 2  # the RPN's and the box head's
        assert [n.op for n in g if n.name == "roi_heads.box_roi_pool"] == ["roi_align"]
        assert g["roi_heads.box_head.fc6"].output_shape == (None, 1024)  # one row per proposal: data-dependent


def test_detection_real_weights_never_run(zoo, monkeypatch):
    """A model with real weights is captured on meta stand-ins: its own tensors are never read by an op."""
    from torchvision import models
    from torchvision_ops import enable_detection

    from modellint.adapters.torch_live import graph_from_module

    enable_detection()
    model = models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ran = []
    real_conv = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d",
                        lambda x, *a, **k: ran.append(x.device.type) or real_conv(x, *a, **k))
    g = graph_from_module(model, input_shape=(1, 3, 320, 320))
    assert "meta stand-ins" in g.notes[0], g.notes[0]
    assert ran and set(ran) == {"meta"}  # every convolution ran on meta tensors
    assert g.total_params == zoo.expected_params(model)[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
