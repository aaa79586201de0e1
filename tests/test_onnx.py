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
    assert not [n for n in read_onnx(ext).notes if "external data" in n]  # next to it: nothing to say
    data = (tmp_path / "ext.onnx.data").read_bytes()
    (tmp_path / "ext.onnx.data").write_bytes(data[:100])
    assert f"external data 'ext.onnx.data' cut short (100 of {len(data):,} bytes)" in read_onnx(ext).notes[0]
    (tmp_path / "ext.onnx.data").unlink()
    g = read_onnx(ext)
    assert g.total_params == sum(p.numel() for p in model.parameters()) + bn_running_stats(model)
    assert g["conv2"].output_shape == (None, 32, 32, 32)
    (note,) = [n for n in g.notes if "external data" in n]  # issue 11: said, not silent
    assert note.startswith("external data 'ext.onnx.data' not found next to ext.onnx: weights not read "
                           "(the architecture, shapes and parameter counts are, from the .onnx alone)")


def test_missing_external_data_files_each_named(small, tmp_path):
    proto = onnx.load(str(small[2]))
    ext = tmp_path / "split.onnx"
    onnx.save_model(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    files = sorted(p.name for p in tmp_path.iterdir() if p != ext)
    assert len(files) > 4
    for name in files[:2]:
        (tmp_path / name).unlink()
    (note,) = [n for n in read_onnx(ext).notes if "external data" in n]
    assert f"{files[0]!r}" in note and f"{files[1]!r}" in note and f"{files[2]!r}" not in note
    assert "not found next to split.onnx: weights not read" in note


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


# ---------------------------------------------------------------------------
# hostile and inconsistent files (issue 10): dims against data, absurd sizes, cycles
# ---------------------------------------------------------------------------

def _dense_model(path, w=None, nodes=None, **graph_kw):
    """x (N, 3) -> MatMul W (3, 4) -> y, with W (or nodes) replaced as given."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    if w is None:
        w = numpy_helper.from_array(np.ones((3, 4), np.float32), "W")
    nodes = nodes or [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[w], **graph_kw)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def _tensor(name, dtype, dims, raw=None, floats=()):
    """A TensorProto as a file may hold it (onnx.helper.make_tensor refuses inconsistent ones)."""
    t = onnx.TensorProto(name=name, data_type=dtype, dims=dims, float_data=floats)
    if raw is not None:
        t.raw_data = raw
    return t


def _refused(path, text):
    from conftest import sha256

    before = sha256(path)
    with pytest.raises(InputError) as info:
        read_onnx(path)
    msg = str(info.value)
    assert msg == f"{path}: {text}", msg
    assert sha256(path) == before


def test_consistent_dense_model_reads(tmp_path):
    g = read_onnx(_dense_model(tmp_path / "ok.onnx"))
    assert g["fc"].op == "dense" and g.total_params == 12


def test_initializer_raw_data_shorter_than_its_dims(tmp_path):
    w = _tensor("W", onnx.TensorProto.FLOAT, [3, 4], raw=b"\0" * 40)  # 12 floats are 48 bytes
    _refused(_dense_model(tmp_path / "short.onnx", w),
             "initializer 'W' has dims [3, 4] (12 elements of float32, 48 bytes) but 40 bytes of raw data")


def test_initializer_typed_data_disagrees_with_its_dims(tmp_path):
    w = _tensor("W", onnx.TensorProto.FLOAT, [3, 4], floats=[1.0] * 13)
    _refused(_dense_model(tmp_path / "long.onnx", w),
             "initializer 'W' has dims [3, 4] (12 elements of float32) but holds 13 values")


@pytest.mark.parametrize("external", [False, True])
def test_initializer_of_2_50_elements_is_refused(tmp_path, external):
    """dims of 2**25 x 2**25 with four bytes of data, or 'kept in an external file': refused by the dims."""
    from onnx import TensorProto

    w = _tensor("W", TensorProto.FLOAT, [1 << 25, 1 << 25], raw=b"\0" * 4)
    if external:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        w.external_data.add(key="location", value="weights.bin")
    _refused(_dense_model(tmp_path / "huge.onnx", w),
             "initializer 'W' has dims [33554432, 33554432] (1,125,899,906,842,624 elements), more than the 2**40 "
             "modellint reads")


def test_negative_dims_and_constant_tensors_are_checked(tmp_path):
    from onnx import TensorProto, helper

    w = _tensor("W", TensorProto.FLOAT, [3, -4])
    _refused(_dense_model(tmp_path / "neg.onnx", w), "initializer 'W' has a negative dimension in its dims [3, -4]")
    shape = _tensor("", TensorProto.INT64, [2], raw=b"\0" * 8)  # one int64 where two are promised
    nodes = [helper.make_node("Constant", [], ["s"], name="target", value=shape),
             helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Reshape", ["h", "s"], ["y"], name="reshape")]
    _refused(_dense_model(tmp_path / "const.onnx", nodes=nodes),
             "the tensor of node 'target', attribute 'value' has dims [2] (2 elements of int64, 16 bytes) but 8 bytes "
             "of raw data")


def test_graph_with_a_cycle_is_refused(tmp_path):
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "loop"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["loop"], name="relu"),
             helper.make_node("Identity", ["a"], ["y"], name="out")]
    _refused(_dense_model(tmp_path / "cycle.onnx", nodes=nodes),
             "ONNX graph 'g' has a cycle through node 'add' (a node's input depends on its own output; ONNX graphs "
             "are acyclic)")
    self_loop = [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
                 helper.make_node("Max", ["h", "y"], ["y"], name="self")]
    _refused(_dense_model(tmp_path / "self.onnx", nodes=self_loop),
             "ONNX graph 'g' has a cycle through node 'self' (a node's input depends on its own output; ONNX graphs "
             "are acyclic)")


def test_nodes_out_of_order_but_acyclic_still_read(tmp_path):
    from onnx import helper

    nodes = [helper.make_node("Relu", ["h"], ["y"], name="relu"),
             helper.make_node("MatMul", ["x", "W"], ["h"], name="fc")]
    g = read_onnx(_dense_model(tmp_path / "unsorted.onnx", nodes=nodes))
    assert g.total_params == 12


def test_wire_count_skips_groups_and_refuses_broken_ones(small):
    """count_messages reads unknown fields of every wire type, a (deprecated) group included, in one helper."""
    from modellint.adapters.onnx_file import count_messages

    def key(field, wire):  # a field's tag as a varint
        n, out = field << 3 | wire, b""
        while n > 0x7F:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    data = small[2].read_bytes()
    base = count_messages(data)
    assert base[0] > 10
    group = key(99, 3) + key(1, 0) + b"\x05" + key(2, 5) + b"abcd" + key(99, 4)  # a group holding two fields
    fields = key(98, 1) + b"12345678" + key(97, 2) + b"\x03xyz"  # a fixed64, a length-delimited field
    assert count_messages(data + group + fields) == base
    onnx.load_model_from_string(data + group + fields)  # protobuf reads them the same way
    for broken in (group[:-2], key(99, 3) + key(1, 7), key(99, 4), fields[:-1]):
        with pytest.raises(ValueError):
            count_messages(data + broken)


# ---------------------------------------------------------------------------
# the batch dimension (issue 11): symbolic or an export example's 1 read as any batch, a larger fixed one kept
# ---------------------------------------------------------------------------

def test_fixed_batch_is_kept_and_an_export_examples_1_is_any_batch(small, tmp_path):
    model, _, one = small
    ten = export(SmallCNN(), torch.randn(10, 3, 64, 64), tmp_path / "b10.onnx")
    dyn = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(SmallCNN().eval(), (torch.randn(2, 3, 64, 64),), str(dyn), dynamo=True, optimize=False,
                          external_data=False, verbose=False, dynamic_shapes=({0: torch.export.Dim("batch")},))
    g1, g10, gd = read_onnx(one), read_onnx(ten), read_onnx(dyn)
    assert onnx.load(str(ten)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 10
    assert onnx.load(str(dyn)).graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic
    assert g10.input_shapes() == [(10, 64, 64, 3)]
    assert g1.input_shapes() == gd.input_shapes() == [(None, 64, 64, 3)]
    for name, shape in conv_shapes(model, torch.randn(1, 3, 64, 64)).items():  # every shape downstream
        assert g10[name].output_shape == (10, *shape[1:]), name
        assert g1[name].output_shape == gd[name].output_shape == shape, name
    assert g10["head"].output_shape == (10, 10) and gd["head"].output_shape == (None, 10)
    assert any("fixed batch of 10" in n for n in g10.notes) and not any("fixed batch" in n for n in g1.notes)
    # costs are per sample, whatever the batch
    per_node = lambda g: {k: (c.macs, c.activation_bytes) for k, c in node_costs(g).items()}  # noqa: E731
    assert per_node(g10) == per_node(g1) == per_node(gd)
    assert last_spatial(g10)[1].size == last_spatial(g1)[1].size == (SMALL_RF, SMALL_RF)


# ---------------------------------------------------------------------------
# a PyTorch export gets PyTorch's assumed loss (issue 11)
# ---------------------------------------------------------------------------

class SoftmaxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1), 1)
        return self.softmax(self.fc(x))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_pytorch_export_ending_in_softmax_gets_the_assumed_loss(tmp_path, exporter):
    """As the live module: nn.CrossEntropyLoss assumed (the producer says pytorch), ML305 at the head."""
    from modellint import analyze
    from modellint.adapters import exported_by_pytorch

    module = SoftmaxHead().eval()
    path = export(module, torch.randn(1, 3, 32, 32), tmp_path / "head.onnx", exporter)
    report = analyze(path)
    g = report.graph
    assert onnx.load(str(path)).producer_name == "pytorch" and exported_by_pytorch(g)
    assert g.framework_version.startswith("pytorch ")
    assert g.output_activation() == "softmax"
    assert g.training is not None and g.training.assumed and g.training.loss == "CrossEntropyLoss"
    (f,) = [f for f in report.findings if f.code == "ML305"]
    live = analyze(module, input_shape=(1, 3, 32, 32))
    assert live.graph.training.assumed
    (want,) = [f for f in live.findings if f.code == "ML305"]
    assert f.layers == want.layers == ["fc"] and f.severity == want.severity == "warning"
    assert "nn.CrossEntropyLoss" in f.message and "assuming" in f.message
    # the same words past the layer's label (ONNX names the Gemm, the live graph the Linear)
    assert f.message.split(":", 1)[1] == want.message.split(":", 1)[1]


def test_onnx_without_a_pytorch_producer_assumes_no_loss(small, tmp_path):
    from modellint.adapters import load_graph

    proto = onnx.load(str(export(SoftmaxHead(), torch.randn(1, 3, 32, 32), tmp_path / "head.onnx")))
    proto.producer_name, proto.producer_version = "tf2onnx", "1.16.1"
    other = tmp_path / "other.onnx"
    onnx.save(proto, str(other))
    g = load_graph(other)
    assert g.output_activation() == "softmax" and g.training is None
