"""ONNX files: models exported from PyTorch read back into the layer graph.

Models are written here (ResNet-18 is torchvision's architecture, without
torchvision) and exported with ``torch.onnx.export``. Torch 2.13's default
exporter is the dynamo one (``dynamo=True``, needs onnxscript); its graph
optimiser folds BatchNormalization into the preceding Conv (the onnxscript
rewrite rule ``FuseBatchNormIntoConv``), so the tests export with
``optimize=False``, which keeps every BatchNormalization node. The older
TorchScript exporter (``dynamo=False``) is exercised too, in training mode
(``TrainingMode.TRAINING``, no constant folding), which keeps BN the same way.
Both run offline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from modellint.errors import InputError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
nn = torch.nn

pytestmark = [pytest.mark.onnx, pytest.mark.torch]

from modellint.adapters.onnx_file import read_onnx  # noqa: E402
from modellint.analysis import last_spatial, node_costs  # noqa: E402


def have_onnxscript() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


EXPORTERS = ["dynamo", "torchscript"]


def export(model, example, path, exporter="dynamo"):
    """Export keeping BatchNormalization nodes (see the module docstring)."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            if not have_onnxscript():
                pytest.skip("torch.onnx.export(dynamo=True) needs onnxscript")
            torch.onnx.export(model, (example,), str(path), dynamo=True, optimize=False,
                              external_data=False, verbose=False)
        else:
            try:
                torch.onnx.export(model, (example,), str(path), dynamo=False,
                                  training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
            except Exception as exc:  # the legacy exporter may be gone in a later torch
                pytest.skip(f"TorchScript-based ONNX exporter unavailable: {exc}")
            model.eval()
    return path


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------

class SmallCNN(nn.Module):
    """RF by hand: conv3 (3) -> conv3/2 (5, jump 2) -> maxpool2 (7, jump 4) -> conv3 dil 2 (7 + 2*2*4 = 23)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=32)  # depthwise
        self.act = nn.SiLU()
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = self.act(self.conv3(self.pool(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.head(x)


SMALL_RF = 23


from torch_resnet import resnet18 as ResNet  # noqa: E402  (torchvision's architecture)


# ResNet-18 by hand: r = 1 + sum (k - 1) * jump_before, jump *= stride.
# conv1 7x7/2 at jump 1, maxpool 3x3/2 at jump 2, layer1's four 3x3 convs at jump 4;
# in layer2..4 the first 3x3 conv (stride 2) sees the previous jump, the other three
# the doubled one. The 1x1 downsample branches add nothing.
RESNET18_RF = (1 + 6 * 1 + 2 * 2 + 4 * 2 * 4
               + 2 * 4 + 3 * 2 * 8
               + 2 * 8 + 3 * 2 * 16
               + 2 * 16 + 3 * 2 * 32)


def bn_running_stats(module) -> int:
    return sum(m.running_mean.numel() + m.running_var.numel()
               for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def conv_shapes(module, x) -> dict:
    """{module path: canonical output shape} of every Conv2d, from a real forward pass."""
    out, hooks = {}, []
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            def hook(mod, inp, res, name=name):
                n, c, h, w = res.shape
                out[name] = (None, h, w, c)
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        module.eval()(x)
    for h in hooks:
        h.remove()
    return out


# ---------------------------------------------------------------------------
# fixtures: export once per module
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallCNN()
    x = torch.randn(1, 3, 64, 64)
    path = export(model, x, tmp_path_factory.mktemp("onnx") / "small.onnx")
    return model, x, path


@pytest.fixture(scope="module", params=EXPORTERS)
def resnet(request, tmp_path_factory):
    torch.manual_seed(0)
    model = ResNet()
    x = torch.randn(1, 3, 224, 224)
    path = export(model, x, tmp_path_factory.mktemp("onnx") / f"resnet18_{request.param}.onnx", request.param)
    return model, x, path, request.param


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------

def test_small_cnn_params_shapes_rf(small):
    model, x, path = small
    g = read_onnx(path)
    assert g.framework == "onnx" and g.source_format == "onnx" and g.layout == "channels_first"
    n_params = sum(p.numel() for p in model.parameters())
    assert g.trainable_params == n_params
    assert g.total_params == n_params + bn_running_stats(model)
    for name, shape in conv_shapes(model, x).items():
        assert g[name].output_shape == shape, name
    assert g.input_shapes() == [(None, 64, 64, 3)]
    _, rf = last_spatial(g)
    assert rf.size == (SMALL_RF, SMALL_RF)


def test_small_cnn_ops(small):
    _, _, path = small
    g = read_onnx(path)
    assert g["conv1"].op == "conv" and g["conv1"].attrs["use_bias"] is True
    assert g["conv1"].attrs["padding"] == ((1, 1), (1, 1))
    assert g["conv2"].attrs["use_bias"] is False and g["conv2"].attrs["strides"] == (2, 2)
    assert g["conv3"].op == "depthwise_conv" and g["conv3"].attrs["dilation"] == (2, 2)
    assert g["bn1"].op == "batchnorm"
    assert (g["bn1"].trainable_params, g["bn1"].non_trainable_params) == (32, 32)
    assert g["pool"].op == "pool_max" and g["pool"].attrs["pool_size"] == (2, 2)
    # SiLU is exported as x * Sigmoid(x): one activation node
    assert g["act"].op == "activation" and g["act"].attrs["function"] == "silu"
    assert g["head"].op == "dense" and g["head"].attrs["units"] == 10
    assert [n.op for n in g].count("global_pool") == 1
    assert g.outputs == ["head"]
    json.dumps(g.to_dict())  # serialisable
    assert sum(c.macs for c in node_costs(g).values()) > 0


def test_resnet18(resnet):
    model, x, path, exporter = resnet
    g = read_onnx(path)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 11_689_512
    assert g.trainable_params == n_params
    assert g.total_params == n_params + bn_running_stats(model)
    shapes = conv_shapes(model, x)
    assert len(shapes) == 20
    for name, shape in shapes.items():
        assert name in g.nodes, f"{exporter}: no node named {name}"
        assert g[name].output_shape == shape, name
    assert sum(1 for n in g if n.op == "batchnorm") == 20, "BatchNormalization nodes were fused away"
    assert sum(1 for n in g if n.op == "add") == 8
    node, rf = last_spatial(g)
    assert rf.size == (RESNET18_RF, RESNET18_RF) == (435, 435)
    assert rf.stride == (32, 32)
    assert g["fc"].op == "dense" and g["fc"].output_shape == (None, 1000)


def test_resnet18_block_names(resnet):
    _, _, path, exporter = resnet
    g = read_onnx(path)
    assert g["layer1.0.add"].op == "add"
    assert set(g["layer1.0.add"].inputs) == {"layer1.0.bn2", "maxpool"}
    assert g["layer2.0.downsample.0"].attrs["kernel"] == (1, 1)


def test_matmul_add_is_one_dense_and_sequence_ops(tmp_path):
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 16)
            self.lstm = nn.LSTM(16, 32, batch_first=True, bidirectional=True)
            self.ln = nn.LayerNorm(64)
            self.fc = nn.Linear(64, 8)

        def forward(self, t):
            y, _ = self.lstm(self.emb(t))
            return self.fc(self.ln(y))

    model = Seq()
    path = export(model, torch.randint(0, 100, (2, 7)), tmp_path / "seq.onnx")
    g = read_onnx(path)
    assert g.total_params == sum(p.numel() for p in model.parameters())
    assert g["emb"].op == "embedding" and g["emb"].params == 1600
    assert g["lstm"].op == "rnn" and g["lstm"].attrs["bidirectional"] and g["lstm"].attrs["cell"] == "lstm"
    assert g["ln"].op == "layernorm"
    assert g["fc"].op == "dense" and g["fc"].attrs["use_bias"] and g["fc"].params == 64 * 8 + 8


def test_external_data_not_needed(small, tmp_path):
    model, _, path = small
    proto = onnx.load(str(path))
    ext = tmp_path / "ext.onnx"
    onnx.save_model(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    (tmp_path / "ext.onnx.data").unlink()
    g = read_onnx(ext)
    assert g.total_params == sum(p.numel() for p in model.parameters()) + bn_running_stats(model)
    assert g["conv2"].output_shape == (None, 32, 32, 32)


def test_reading_imports_no_torch(small):
    _, _, path = small
    code = ("import sys, modellint; assert 'onnx' not in sys.modules, 'import modellint imported onnx'; "
            "from modellint.adapters.onnx_file import read_onnx; g = read_onnx(sys.argv[1]); "
            "from modellint.analysis import last_spatial, node_costs; last_spatial(g); node_costs(g); "
            "print(len(g), sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras')))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("[]"), proc.stdout


@pytest.mark.parametrize("cut", [10, 200, 0.5, -3])
def test_truncated_is_input_error(small, tmp_path, cut):
    data = small[2].read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut if cut > 0 else len(data) + cut
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[:n])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_onnx(bad)


def test_no_graph_is_input_error(tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
    with pytest.raises(InputError, match="no graph"):
        read_onnx(bare)


def test_unknown_op_keeps_shapes(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"),
             helper.make_node("MyOp", ["a"], ["b"], name="custom", domain="my.domain"),
             helper.make_node("Relu", ["b"], ["y"], name="r2")]
    graph = helper.make_graph(nodes, "g", [x], [y],
                              value_info=[helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.domain", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save_model(model, str(path))
    g = read_onnx(path)
    assert g["custom"].op == "unknown"
    assert g["custom"].output_shape == (None, 8, 8, 3)
    assert g["r2"].output_shape == (None, 8, 8, 3)
    assert g.inputs == ["x"] and g.outputs == ["r2"]
