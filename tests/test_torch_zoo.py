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
