"""Live PyTorch modules -> Graph (issue 4): the same graph, analyses and rules as Keras.

ResNet-18/50 are written here to torchvision's architecture (no torchvision
import); their parameter counts are torchvision's published ones.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import modellint  # noqa: E402
import modellint.ops  # noqa: E402
from modellint.adapters.torch_live import (  # noqa: E402
    graph_from_exported_program,
    graph_from_module,
    graph_from_torchscript,
)
from modellint.analysis import last_spatial, total_macs  # noqa: E402
from modellint.engine import run_rules, select_rules  # noqa: E402
from modellint.errors import InputError  # noqa: E402

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import seed_cnn_torch  # noqa: E402


# -- torchvision's ResNet, restated ---------------------------------------------

from torch_resnet import resnet18, resnet50  # noqa: E402


def _hooked_shapes(model, x) -> dict:
    """Output shape of every leaf-module call in a real forward pass: {"path" or "path@k": shape}."""
    shapes, calls, handles = {}, {}, []
    for path, m in model.named_modules():
        if next(m.children(), None) is None:
            def hook(mod, args, out, path=path):
                k = calls.get(path, 0)
                calls[path] = k + 1
                shapes[path if k == 0 else f"{path}@{k}"] = tuple(out.shape)
            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


# -- (a) the seed port is the Keras seed ---------------------------------------------

def _ops_and_shapes(graph):
    """(op, canonical shape) per node, input node excluded; a kept-dims global pool
    followed by a flatten (PyTorch's AdaptiveAvgPool2d(1) + Flatten) counts as one
    global pool, as Keras' GlobalAveragePooling2D."""
    rows = []
    for node in graph:
        if node.op == "input":
            continue
        if node.op == "flatten" and rows and rows[-1][0] == "global_pool":
            rows[-1] = ("global_pool", node.output_shape)
            continue
        rows.append((node.op, node.output_shape))
    return rows


def test_seed_port_matches_keras_seed():
    keras_graph = modellint.load_graph(ROOT / "examples" / "seed_cnn.h5")
    torch_graph = graph_from_module(seed_cnn_torch.build(), input_shape=seed_cnn_torch.INPUT_SHAPE)
    assert torch_graph.framework == "torch" and torch_graph.layout == "channels_first"
    assert torch_graph.source_format == "live"
    assert _ops_and_shapes(torch_graph) == _ops_and_shapes(keras_graph)
    assert torch_graph.input_shapes() == keras_graph.input_shapes() == [(None, 128, 128, 3)]
    assert torch_graph.display_shape(torch_graph.input_shapes()[0]) == (None, 3, 128, 128)
    assert torch_graph.trainable_params == keras_graph.trainable_params == 168_339
    assert torch_graph.total_params == keras_graph.total_params == 168_793  # + BatchNorm running statistics
    node, rf = last_spatial(torch_graph)
    k_node, k_rf = last_spatial(keras_graph)
    assert node.name == "conv4" and k_node.name == "conv2d_4"
    assert rf.size == k_rf.size == (38, 38)
    assert total_macs(torch_graph) == total_macs(keras_graph)
    assert [n.name for n in torch_graph][1:4] == ["input_bn", "conv1", "pool1"]
    assert torch_graph["conv1"].attrs["padding"] == ((1, 1), (1, 1))
    assert torch_graph["softmax"].attrs == {"function": "softmax", "axis": -1}


# -- (b) ResNets: parameters and every leaf's shape ----------------------------------

@pytest.mark.parametrize("ctor, params, macs, rf", [(resnet18, 11_689_512, 1_814_073_344, 435),
                                                    (resnet50, 25_557_032, 4_089_184_256, 427)])
def test_resnet_params_shapes_macs(ctor, params, macs, rf):
    model = ctor()
    graph = graph_from_module(model, input_shape=(1, 3, 224, 224))
    assert graph.notes[0].startswith("captured with torch.fx on meta tensors")  # the light capture: see (f)
    truth = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert graph.trainable_params == truth == params
    assert graph.total_params == params + stats  # running statistics count as non-trainable, as in Keras
    assert total_macs(graph) == macs  # torchvision: 1.81 and 4.09 GMACs
    node, field = last_spatial(graph)
    assert field.size == (rf, rf)
    assert graph["layer1.0.conv1"].inputs == ["maxpool"]
    assert graph["layer1.0.relu@1"].shares_params_with == "layer1.0.relu"

    small = graph_from_module(model, input_shape=(1, 3, 64, 64))
    real = _hooked_shapes(model, torch.randn(1, 3, 64, 64))
    assert len(real) == len([n for n in small if n.source_type.startswith("torch.nn.")])  # one node per call
    assert set(real) <= set(small.nodes)
    for name, shape in real.items():
        got = small.display_shape(small[name].output_shape)
        assert got == (None, *shape[1:]), name


def test_captures_agree_on_resnet18():
    model = resnet18()
    graphs = {c: graph_from_module(model, input_shape=(1, 3, 64, 64), capture=c) for c in ("export", "fx", "hooks")}
    rows = {c: [(n.name, n.op, n.inputs, n.output_shapes, n.params, n.trainable_params, n.attrs) for n in g]
            for c, g in graphs.items()}
    assert rows["fx"] == rows["export"]
    assert rows["hooks"] == rows["export"]
    assert "torch.fx" in graphs["fx"].notes[0] and "forward hooks" in graphs["hooks"].notes[0]


def test_exported_program_and_torchscript_give_the_live_graph(tmp_path):
    model = resnet18().eval()
    live = graph_from_module(model, input_shape=(1, 3, 64, 64))
    rows = [(n.name, n.op, n.inputs, n.output_shapes, n.params, n.trainable_params) for n in live]

    ep = torch.export.export(model, (torch.zeros(1, 3, 64, 64),))
    torch.export.save(ep, tmp_path / "r18.pt2")
    pt2 = graph_from_exported_program(torch.export.load(tmp_path / "r18.pt2"))
    assert pt2.source_format == "pt2" and pt2.model_class == "ResNet"
    assert [(n.name, n.op, n.inputs, n.output_shapes, n.params, n.trainable_params) for n in pt2] == rows

    for make in (lambda: torch.jit.script(model), lambda: torch.jit.trace(model, torch.zeros(1, 3, 64, 64))):
        buf = io.BytesIO()
        torch.jit.save(make(), buf)
        buf.seek(0)
        script = torch.jit.load(buf)
        ts = graph_from_torchscript(script, input_shape=(1, 3, 64, 64))
        assert [(n.name, n.op, n.inputs, n.output_shapes, n.params, n.trainable_params) for n in ts] == rows
    with pytest.raises(InputError, match="--input-shape"):
        graph_from_torchscript(script)


# -- (c) data-dependent control flow: a fallback capture ------------------------------

class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ReLU()
        self.down = nn.Tanh()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv(x)
        x = self.up(x) if x.sum() > 0 else self.down(x)
        return self.head(x.mean((2, 3)))


def test_data_dependent_control_flow_falls_back():
    model = DataDependent()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = graph_from_module(model, input_shape=(1, 3, 16, 16))
    note = graph.notes[0]
    assert note.startswith("captured with forward hooks")
    assert "torch.export failed" in note and "torch.fx failed" in note
    ops = [n.op for n in graph]
    assert ops == ["input", "conv", "activation", "global_pool", "dense"]
    assert graph["head"].output_shape == (None, 2)
    assert graph.total_params == sum(p.numel() for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def paste_masks_in_image(masks, boxes, img_shape, padding=1):
    """Mask R-CNN's paste pattern (torchvision's own is folded the same way): one Python loop per
    box, sizes read from its values (``int(...)`` calls ``.item()``), impossible on meta tensors."""
    res = []
    for m, b in zip(masks, boxes):
        w, h = max(int(b[2] - b[0] + 1), 1), max(int(b[3] - b[1] + 1), 1)
        pasted = torch.nn.functional.interpolate(m[None], size=(h, w), mode="bilinear")[0, 0]
        canvas = torch.zeros(img_shape, dtype=m.dtype)
        x0, y0 = min(int(b[0]), img_shape[1] - 1), min(int(b[1]), img_shape[0] - 1)
        part = pasted[:img_shape[0] - y0, :img_shape[1] - x0]
        canvas[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part
        res.append(canvas)
    return torch.stack(res)[:, None]


class TinyDetector(nn.Module):
    """Detection post-processing on a toy head: score threshold, cat / split / & along the box
    axis, keep_mask[i] = True, and the per-box mask paste."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.score = nn.Conv2d(8, 1, 1)
        self.box = nn.Conv2d(8, 4, 1)
        self.mask = nn.Conv2d(8, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(7)

    def forward(self, x):
        f = self.backbone(x)
        scores = self.score(f).flatten()
        deltas = self.box(f).permute(0, 2, 3, 1).reshape(-1, 4).abs() * 4
        boxes = torch.cat([deltas[:, :2], deltas[:, :2] + deltas[:, 2:]], dim=1)
        keep = scores > 0
        boxes, scores = boxes[keep], scores[keep]
        both = torch.cat([boxes, boxes], dim=0)  # along the box axis
        boxes = both.split([len(boxes), len(boxes)], dim=0)[0]
        valid = (scores > -1e9) & (scores < 1e9)
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        keep_mask[torch.where(valid)[0]] = True
        idx = torch.where(keep_mask)[0]
        boxes, scores = boxes[idx], scores[idx]
        masks = boxes[:, :1, None, None] * 0 + self.pool(self.mask(f))  # (boxes, 1, 7, 7)
        return boxes, scores, paste_masks_in_image(masks, boxes.round().long(), tuple(x.shape[-2:]))


def test_detection_post_processing_on_meta():
    """Ops along a data-dependent box axis (cat, split, &, x[i] = v) are known ops, and a paste loop
    that calls .item() per box is one paste_masks node: the module is read on meta, never run."""
    model = TinyDetector()
    real = model(torch.randn(1, 3, 16, 16))  # the truth for everything but the number of boxes
    graph = graph_from_module(model, input_shape=(1, 3, 16, 16))
    assert graph.notes[0].startswith("captured with forward hooks on meta tensors"), graph.notes[0]
    assert graph.total_params == sum(p.numel() for p in model.parameters())
    assert [n.name for n in graph if n.op == "unknown"] == []
    shapes = [graph.display_shape(graph.shape_of(r)) for r in graph.outputs]
    assert shapes == [(None, *t.shape[1:]) for t in real] == [(None, 4), (None,), (None, 1, 16, 16)]
    assert [n.op for n in graph if n.op == "paste_masks"] == ["paste_masks"]
    assert any(n.op == "concat" for n in graph) and any(n.op == "split" for n in graph)
    assert any(n.attrs.get("function") == "setitem" for n in graph)  # keep_mask[i] = True reaches the output


# -- (d) in-place ReLU after a residual add -------------------------------------------

class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.conv1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu(self.bn0(self.stem(x)))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        out = self.relu(out)
        return self.fc(torch.flatten(self.pool(out), 1))


def test_inplace_relu_after_residual_add():
    graph = graph_from_module(ResidualNet(), input_shape=(2, 3, 32, 32))
    add = graph["add"]
    assert add.op == "add" and add.inputs == ["bn2", "relu"]
    relu = graph["relu@2"]
    assert relu.op == "activation" and relu.attrs == {"function": "relu", "inplace": True}
    assert relu.inputs == ["add"] and relu.shares_params_with == "relu"
    assert graph["pool"].inputs == ["relu@2"]
    assert graph.input_shapes() == [(None, 32, 32, 3)]  # batch 2 becomes None
    report = run_rules(graph, select_rules())
    about_relu = [f for f in report.findings if f.code in ("ML201", "ML202")
                  and any("relu" in layer for layer in f.layers)]
    assert about_relu == []


# -- (e) the user's module is left alone ---------------------------------------------

def test_module_unchanged():
    model = seed_cnn_torch.build()
    model.train()
    model.bn1.eval()  # a mixed state must come back exactly
    model.fc.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {name: m.training for name, m in model.named_modules()}
    devices = {name: p.device for name, p in model.named_parameters()}
    graph = graph_from_module(model, input_shape=seed_cnn_torch.INPUT_SHAPE)
    assert graph["fc"].trainable_params == 13 and graph["fc"].params == 845
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert {name: p.device for name, p in model.named_parameters()} == devices
    assert not model.fc.weight.requires_grad and model.fc.bias.requires_grad
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model._forward_hooks and not model._forward_pre_hooks


# -- (f) the light capture: torch.fx on meta tensors --------------------------------

class EdgeNet(nn.Module):
    """Layers whose output size has corner cases, each sized by a shape rule on meta tensors."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, dilation=2, padding=(1, 2))
        self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.same = nn.Conv2d(8, 8, 4, padding="same", padding_mode="reflect")
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.inorm = nn.InstanceNorm2d(4, affine=True)
        self.prelu = nn.PReLU(4)
        self.adapt = nn.AdaptiveAvgPool2d((None, 3))
        self.scale = nn.Parameter(torch.ones(4, 1, 1))
        self.fc = nn.Linear(3, 5)

    def forward(self, x):
        x = self.avg(self.pool(self.conv(x)))
        x = self.same(x)
        x = x * 0.5 + x.mean((2, 3), keepdim=True) + torch.zeros(x.shape)  # made on the meta device
        x = self.prelu(self.inorm(self.up(x)))
        x = torch.cat([x * self.scale, torch.sigmoid(x)], 1)
        x = self.adapt(x)
        x += 1.0
        return self.fc(x)


def test_fx_meta_shapes_match_a_real_forward():
    model = EdgeNet()
    graph = graph_from_module(model, input_shape=(2, 3, 37, 41))
    assert graph.notes[0].startswith("captured with torch.fx on meta tensors")  # no fallback
    real = _hooked_shapes(model, torch.randn(2, 3, 37, 41))
    assert set(real) <= set(graph.nodes)
    for name, shape in real.items():
        assert graph.display_shape(graph[name].output_shape) == (None, *shape[1:]), name
    fake = graph_from_module(model, input_shape=(2, 3, 37, 41), capture="hooks")  # fake tensors: torch's own sizes
    assert [(n.name, n.op, n.inputs, n.output_shapes, n.params) for n in graph] == \
        [(n.name, n.op, n.inputs, n.output_shapes, n.params) for n in fake]


def test_fx_meta_imports_no_tracing_stack():
    """The default capture of a CNN never imports sympy or torch._dynamo (their import is
    most of the time and memory of export or fake tensors), and leaves the module alone."""
    code = ("import sys; sys.path.insert(0, 'tests'); import torch; from torch_resnet import resnet18; "
            "from modellint.adapters.torch_live import graph_from_module; m = resnet18(); "
            "g = graph_from_module(m, input_shape=(1, 3, 224, 224)); "
            "print(g.notes[0].split(' (')[0], g.trainable_params, 'sympy' in sys.modules, "
            "'torch._dynamo' in sys.modules, all(p.device.type == 'cpu' for p in m.parameters()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.stdout.strip() == "captured with torch.fx on meta tensors 11689512 False False True", out.stderr


def test_fx_meta_falls_back_to_fake_tensors_and_export():
    class Scaled(nn.Module):  # a leaf (fx cannot trace it alone) with weights whose forward fails on
        def __init__(self):  # meta tensors (a weight copied to the CPU): fake tensors size it
            super().__init__()
            self.w = nn.Parameter(torch.ones(8))

        def forward(self, x):
            if x.dim() == 2:
                return x * self.w.to("cpu")
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 8)
            self.s = Scaled()

        def forward(self, x):
            return self.s(self.fc(x))

    graph = graph_from_module(Net(), input_shape=(2, 4))
    assert graph.notes[0].startswith("captured with torch.fx (symbolic trace; shapes from fake tensors")
    assert "Scaled" in graph.notes[0] and graph["s"].output_shape == (None, 8) and graph.total_params == 48

    class Loop(nn.Module):  # fx cannot trace range(proxy); export (static shapes) can
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            for _ in range(x.shape[1] // 2):
                x = self.fc(x)
            return x

    graph = graph_from_module(Loop(), input_shape=(1, 4))  # hooks on meta tensors come before torch.export
    assert graph.notes[0].startswith("captured with forward hooks on meta tensors") and "torch.fx failed" in graph.notes[0]
    assert [n.name for n in graph] == ["x", "fc", "fc@1"]
    graph = graph_from_module(Loop(), input_shape=(1, 4), capture="export")
    assert graph.notes[0].startswith("captured with torch.export")
    assert [n.name for n in graph] == ["x", "fc", "fc@1"]


def test_fx_meta_rejects_what_torch_rejects():
    with pytest.raises(InputError, match="could not capture"):
        graph_from_module(nn.Sequential(nn.Linear(8, 4)), input_shape=(1, 5))


# -- inputs, errors and imports -------------------------------------------------------

def test_input_shape_required_and_example_inputs():
    with pytest.raises(InputError, match="input_shape"):
        graph_from_module(seed_cnn_torch.build())
    graph = graph_from_module(seed_cnn_torch.build(), example_inputs=torch.zeros(4, 3, 32, 32), name="seed")
    assert graph.name == "seed" and graph["fc"].output_shape == (None, 13)
    assert graph["conv4"].output_shape == (None, 4, 4, 64)


def test_unknown_module_and_shared_module():
    class Swishish(nn.Module):  # torch.fx cannot trace it (Python branches on a tensor): one unknown node
        def forward(self, x):
            if x.dim() > 1:
                return x * torch.sigmoid(x) + 1
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.act = Swishish()

        def forward(self, x):
            return self.fc(self.act(self.fc(x)))  # fc called twice: its weights count once

    graph = graph_from_module(Net(), input_shape=(1, 8))
    assert [n.name for n in graph] == ["x", "fc", "act", "fc@1"]
    assert graph["act"].op == "unknown" and graph["act"].source_type.endswith("Swishish")
    assert graph["act"].output_shape == (None, 8)
    assert graph["fc@1"].shares_params_with == "fc" and graph["fc@1"].params == 0
    assert graph.total_params == 72


def test_import_modellint_does_not_import_torch():
    code = "import sys, modellint; modellint.load_graph; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# -- the module and function tables -------------------------------------------------

class _Fn(nn.Module):
    """A conv, then a function of its output (a functional op between leaf modules)."""

    def __init__(self, fn):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x))


class _Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = nn.MultiheadAttention(12, 3, batch_first=True)

    def forward(self, x):
        return self.m(x, x, x)[0]


X4, X3, X5, V, S = (2, 4, 16, 16), (2, 4, 20), (2, 4, 8, 8, 8), (2, 10), (2, 7, 12)
F = torch.nn.functional
ZOO = {  # name: (module, input shape, canonical op)
    "conv1d": (nn.Conv1d(4, 8, 3, stride=2, padding=1), X3, "conv"),
    "conv2d_grouped_dilated": (nn.Conv2d(4, 8, 3, groups=2, dilation=2), X4, "conv"),
    "conv2d_same": (nn.Conv2d(4, 8, 3, padding="same"), X4, "conv"),
    "conv3d": (nn.Conv3d(4, 6, 3, padding=(1, 0, 1)), X5, "conv"),
    "conv_transpose2d": (nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1), X4, "conv_transpose"),
    "conv_transpose1d": (nn.ConvTranspose1d(4, 8, 4, stride=2), X3, "conv_transpose"),
    "linear": (nn.Linear(10, 5), V, "dense"),
    "linear_on_sequence": (nn.Linear(12, 5), S, "dense"),
    "batchnorm1d": (nn.BatchNorm1d(10), V, "batchnorm"),
    "batchnorm3d": (nn.BatchNorm3d(4), X5, "batchnorm"),
    "layernorm": (nn.LayerNorm(12), S, "layernorm"),
    "layernorm_chw": (nn.LayerNorm([4, 16, 16]), X4, "layernorm"),
    "groupnorm": (nn.GroupNorm(2, 4), X4, "groupnorm"),
    "instancenorm": (nn.InstanceNorm2d(4, affine=True), X4, "groupnorm"),
    "relu6": (nn.ReLU6(), X4, "activation"),
    "leaky_relu": (nn.LeakyReLU(0.2), X4, "activation"),
    "prelu": (nn.PReLU(4), X4, "activation"),
    "gelu": (nn.GELU(), X4, "activation"),
    "silu": (nn.SiLU(), X4, "activation"),
    "hardswish": (nn.Hardswish(), X4, "activation"),
    "mish": (nn.Mish(), X4, "activation"),
    "softmax": (nn.Softmax(dim=1), V, "activation"),
    "log_softmax": (nn.LogSoftmax(dim=-1), S, "activation"),
    "maxpool_padded": (nn.MaxPool2d(3, 2, padding=1), X4, "pool_max"),
    "maxpool_ceil": (nn.MaxPool2d(3, 2, ceil_mode=True), (1, 4, 15, 15), "pool_max"),
    "avgpool": (nn.AvgPool2d(2), X4, "pool_avg"),
    "maxpool1d": (nn.MaxPool1d(2), X3, "pool_max"),
    "avgpool3d": (nn.AvgPool3d(2), X5, "pool_avg"),
    "adaptive_avg_1": (nn.AdaptiveAvgPool2d(1), X4, "global_pool"),
    "adaptive_max_1": (nn.AdaptiveMaxPool2d((1, 1)), X4, "global_pool"),
    "adaptive_avg_divisor": (nn.AdaptiveAvgPool2d(4), X4, "pool_avg"),
    "adaptive_avg_other": (nn.AdaptiveAvgPool2d(5), X4, "resize"),
    "flatten": (nn.Flatten(), X4, "flatten"),
    "dropout": (nn.Dropout(0.3), X4, "dropout"),
    "dropout2d": (nn.Dropout2d(0.1), X4, "dropout"),
    "upsample": (nn.Upsample(scale_factor=2), X4, "upsample"),
    "upsample_to_size": (nn.Upsample(size=(32, 32), mode="bilinear"), X4, "upsample"),
    "zeropad": (nn.ZeroPad2d((1, 2, 3, 4)), X4, "pad"),
    "reflectionpad": (nn.ReflectionPad2d(2), X4, "pad"),
    "lstm": (nn.LSTM(12, 16, batch_first=True), S, "rnn"),
    "gru_bidirectional": (nn.GRU(12, 8, batch_first=True, bidirectional=True), S, "rnn"),
    "rnn": (nn.RNN(12, 8, batch_first=True), S, "rnn"),
    "multihead_attention": (_Attn(), S, "attention"),
    "embedding": (nn.Embedding(50, 8), (2, 6), "embedding"),
    "F.relu": (_Fn(F.relu), X4, "activation"),
    "mean_hw": (_Fn(lambda x: x.mean((2, 3))), X4, "global_pool"),
    "view_batch_minus1": (_Fn(lambda x: x.view(x.size(0), -1)), X4, "flatten"),
    "cat_channels": (_Fn(lambda x: torch.cat([x, x * 2], 1)), X4, "concat"),
    "interpolate": (_Fn(lambda x: F.interpolate(x, scale_factor=2)), X4, "upsample"),
    "F.pad": (_Fn(lambda x: F.pad(x, (1, 1, 2, 2))), X4, "pad"),
    "permute_nhwc": (_Fn(lambda x: x.permute(0, 2, 3, 1)), X4, "permute"),
    "F.softmax": (_Fn(lambda x: F.softmax(x, dim=1)), X4, "activation"),
    "F.max_pool2d": (_Fn(lambda x: F.max_pool2d(x, 2)), X4, "pool_max"),
    "scale_and_shift": (_Fn(lambda x: x / 255.0 - 0.5), X4, "rescaling"),
}


class _Wrap(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)


@pytest.mark.parametrize("name", list(ZOO))
def test_module_zoo(name):
    """Each module maps to its canonical op; parameters are the module's; the
    op table's own shape inference (used for TorchScript) agrees with the trace."""
    module, shape, op = ZOO[name]
    net = module if isinstance(module, (_Fn, _Attn)) else _Wrap(module)
    graph = graph_from_module(net, input_shape=shape, capture="fx")
    nodes = [n for n in graph if n.op != "input"]
    # every layer is sized on meta tensors: one without a shape rule (LSTM, MultiheadAttention)
    # runs with meta stand-ins for its weights (torch.func.functional_call), not on fake tensors
    assert "on meta tensors" in graph.notes[0], graph.notes[0]
    example = torch.zeros(shape, dtype=torch.long if name == "embedding" else torch.float32)
    with torch.no_grad():
        real = net.eval()(example)
    real = real[0] if isinstance(real, tuple) else real
    assert graph.display_shape(nodes[-1].output_shape) == (None, *real.shape[1:])
    assert nodes[-1].op == op and not [n for n in nodes if n.op == "unknown"]
    truth = sum(p.numel() for p in net.parameters())
    assert graph.trainable_params == truth
    for node in nodes:  # ops.infer_shapes from the node's attrs reproduces the traced shape
        got = modellint.ops.infer_shapes(node.op, node.attrs, [graph.shape_of(r) for r in node.inputs], graph.layout)
        assert got[0] == node.output_shape, node.name
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(net, example) if isinstance(module, _Fn) else torch.jit.script(net), buf)
    buf.seek(0)
    ts = graph_from_torchscript(torch.jit.load(buf), input_shape=shape)
    assert [(n.op, n.output_shape, n.params) for n in ts if n.op != "input"] == \
        [(n.op, n.output_shape, n.params) for n in nodes]


def test_meta_rules_size_norms_and_attention_as_torch_does():
    """The fx capture sizes normalisations and sdpa by rule on meta tensors (torch's Python
    decompositions are slow there): the shapes are torch's own, and a call whose weights do not
    fit the input is left to torch, which rejects it."""
    import torch.nn.functional as F

    from modellint.adapters.torch_capture_fx import _MetaRules

    m = lambda *s: torch.empty(s, device="meta")  # noqa: E731
    x, seq = m(2, 6, 5, 3), m(2, 4, 7, 8)
    calls = [
        lambda: F.batch_norm(x, m(6), m(6), m(6), m(6)),
        lambda: F.layer_norm(seq, (8,), m(8), m(8)),
        lambda: F.group_norm(x, 3, m(6), m(6)),
        lambda: F.rms_norm(seq, (7, 8), m(7, 8)),
        lambda: F.scaled_dot_product_attention(seq, m(2, 4, 9, 8), m(2, 4, 9, 5)),
        lambda: F.scaled_dot_product_attention(seq, m(2, 4, 9, 8), m(2, 4, 9, 5), attn_mask=m(7, 9)),
    ]
    for call in calls:
        with _MetaRules():
            ruled = call()
        assert ruled.is_meta and ruled.shape == call().shape
    with pytest.raises(RuntimeError), _MetaRules():
        F.batch_norm(x, m(5), m(5))
    with pytest.raises(RuntimeError), _MetaRules():
        F.layer_norm(seq, (7,))
