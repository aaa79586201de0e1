"""Per-tensor layouts in the PyTorch capture, against torch's own shapes.

A captured tensor is channels first (a conv feature map ``(N, C, ...)``: made by a
conv, pool or BatchNorm) or features last (``(N, T, F)``: made by ``nn.Linear``,
``nn.Embedding``, an RNN, attention, a ``LayerNorm`` over the last dim, or an NHWC
tensor permuted from a feature map); a pass-through layer keeps its input's. The
graph stores a channels-first tensor with dim 1 moved last and a features-last one
as torch has it. Each test runs the model for real with hooks on every leaf module
and maps torch's shapes by that rule, independently of the capture.
"""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

from modellint import analyze  # noqa: E402
from modellint.adapters.torch_live import graph_from_module, graph_from_torchscript  # noqa: E402
from modellint.analysis.cost import node_costs  # noqa: E402
from modellint.errors import InputError  # noqa: E402
from modellint.graph import FeaturesLast  # noqa: E402

pytestmark = pytest.mark.torch

CF_MODULES = (nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool1d, nn.MaxPool2d,
              nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
FL_MODULES = (nn.Linear, nn.Embedding, nn.LSTM, nn.GRU, nn.RNN, nn.MultiheadAttention, nn.LayerNorm)


# -- the models ------------------------------------------------------------------------

class TextEncoder(nn.Module):
    """Embedding + learned positions -> TransformerEncoder (batch_first) -> mean over tokens -> Linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.pos = nn.Parameter(torch.zeros(1, 12, 32))
        layer = nn.TransformerEncoderLayer(32, nhead=4, dim_feedforward=64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 5)

    def forward(self, tokens):
        x = self.encoder(self.embed(tokens) + self.pos)
        return self.head(x.mean(dim=1))


class Tagger(nn.Module):
    """A tag per token: Embedding -> bidirectional LSTM -> Dropout -> Linear on every step."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.lstm = nn.LSTM(16, 24, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(48, 7)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.fc(self.drop(out))


class SeqFirst(nn.Module):
    """A batch-first input made time-major for a seq-first LSTM: (T, N, F) tensors."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.lstm(x.transpose(0, 1))
        return self.fc(out[-1])


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: depthwise conv, then LayerNorm and the MLP on NHWC, then back."""

    def __init__(self, c=16):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (N, H, W, C)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, stride=4)
        self.block = ConvNeXtBlock(c)
        self.norm = nn.LayerNorm(c)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.block(self.stem(x))
        return self.head(self.norm(x.mean((-2, -1))))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(6, 16, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(16)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(16, 32, 3)
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.gap(self.conv2(x)).flatten(1))


MODELS = {  # name: (factory, example input)
    "transformer_encoder": (TextEncoder, lambda: torch.randint(0, 100, (4, 12))),
    "lstm_tagger": (Tagger, lambda: torch.randint(0, 100, (4, 9))),
    "seq_first_lstm": (SeqFirst, lambda: torch.randn(4, 10, 6)),
    "convnext_block": (ConvNeXtTiny, lambda: torch.randn(2, 3, 32, 32)),
    "conv1d": (Conv1dNet, lambda: torch.randn(4, 6, 50)),
}


# -- torch's truth -----------------------------------------------------------------------

def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _flat(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _flat(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _flat(v)
    else:
        yield value


def _real(model, x) -> dict:
    """Every leaf-module call of a real forward pass: {"path" or "path@k": (input shape, output shape,
    layout of the output)}, the layout by the rule of the module docstring (a module that is neither
    channels-first nor features-last keeps its input's)."""
    layouts: dict = {}  # id(tensor) -> layout
    out, calls, handles = {}, {}, []

    for path, m in model.named_modules():
        if next(m.children(), None) is not None and not isinstance(m, nn.MultiheadAttention):
            continue  # (MultiheadAttention's out_proj is never called: its weights are used by a function)

        def hook(mod, args, result, path=path):
            k = calls.get(path, 0)
            calls[path] = k + 1
            x_in, y = _first_tensor(args), _first_tensor(result)
            if isinstance(mod, CF_MODULES):
                layout = "cf"
            elif isinstance(mod, FL_MODULES):
                layout = "fl"
            else:
                layout = layouts[id(x_in)]
            layouts[id(y)] = layout
            keep.append(y)
            out[path if k == 0 else f"{path}@{k}"] = (tuple(x_in.shape), tuple(y.shape), layout)

        handles.append(m.register_forward_hook(hook))

    class Elementwise(TorchFunctionMode):  # F.relu, +, dropout between modules: the input's layout
        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            ins = [t for t in _flat((args, kwargs)) if isinstance(t, torch.Tensor) and id(t) in layouts]
            if isinstance(result, torch.Tensor) and ins and result.shape == ins[0].shape:
                layouts.setdefault(id(result), layouts[id(ins[0])])
                keep.append(result)
            return result

    keep: list = []  # tensors whose ids are keys: kept alive for the pass
    try:
        model.eval()
        with torch.enable_grad(), Elementwise():  # grad on: TransformerEncoderLayer's fused path skips hooks
            model(x)
    finally:
        for h in handles:
            h.remove()
    return out


def canonical(shape, layout, batch):
    """torch's shape as the graph stores it: batch as None, channels-first dim 1 moved last; a
    (seq, batch, features) tensor (these models have no other (a, batch, b) with a != batch)
    shows its batch as None where it is."""
    if shape[0] != batch and len(shape) == 3 and shape[1] == batch:
        return (shape[0], None, shape[2])
    shape = (None, *shape[1:]) if shape[0] == batch else tuple(shape)
    if layout == "cf" and len(shape) >= 3:
        return (shape[0], *shape[2:], shape[1])
    return shape


def _graph(name, capture="auto"):
    factory, make = MODELS[name]
    torch.manual_seed(0)
    model, x = factory(), make()
    kwargs = {"example_inputs": x} if not x.is_floating_point() else {"input_shape": tuple(x.shape)}
    return model, x, graph_from_module(model, capture=capture, **kwargs)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_module_node_has_torch_shape_in_its_layout(name):
    model, x, graph = _graph(name)
    real = _real(model, x)
    batch = x.shape[0]
    assert set(real) <= set(graph.nodes)
    for path, (_, shape, layout) in real.items():
        node = graph[path]
        want = canonical(shape, layout, batch)
        assert node.output_shape == want, (path, node.output_shape, want)
        fl = layout == "fl" and len(shape) >= 3
        assert isinstance(node.output_shape, FeaturesLast) == fl, path
        assert (node.attrs.get("layout") == "features_last") == fl, path
        assert graph.display_shape(node.output_shape) == (None, *shape[1:]) if shape[0] == batch else shape, path
    assert graph.layout == "channels_first"


@pytest.mark.parametrize("name", ["transformer_encoder", "lstm_tagger", "convnext_block", "conv1d"])
def test_captures_agree_on_layouts(name):
    graphs = []
    for capture in ("fx", "export", "hooks"):
        try:
            graphs.append(_graph(name, capture)[2])
        except InputError:  # fx cannot trace TransformerEncoderLayer's checks
            assert name == "transformer_encoder" and capture == "fx"
    rows = [[(n.name, n.op, n.output_shape, n.attrs.get("layout")) for n in g] for g in graphs]
    assert len(rows) >= 2 and all(r == rows[0] for r in rows)


def test_transformer_encoder_heads_and_pooling():
    model, x, graph = _graph("transformer_encoder")
    assert graph["tokens"].output_shape == (None, 12)
    assert graph["embed"].output_shape == (None, 12, 32) and graph["add"].output_shape == (None, 12, 32)
    assert graph["encoder.layers.0.norm1"].attrs["axis"] == -1  # LayerNorm over the features
    mean = graph["mean"]  # x.mean(dim=1) over the tokens: a global pooling, not an unknown op
    assert mean.op == "global_pool" and mean.output_shape == (None, 32)
    assert graph["head"].output_shape == (None, 5)
    macs = node_costs(graph)["encoder.layers.0.linear1"].macs
    assert macs == 12 * 32 * 64  # one Linear per token: 12 tokens x 32 in x 64 out


def test_seq_first_tensors_keep_features_last():
    model, x, graph = _graph("seq_first_lstm")
    assert graph["x"].output_shape == (None, 10, 6) and isinstance(graph["x"].output_shape, FeaturesLast)
    lstm = graph["lstm"]
    assert lstm.output_shapes[0] == (10, None, 16)  # (T, N, F): time first, features last, the batch None
    assert graph.display_shape(lstm.output_shapes[0]) == (10, None, 16)
    assert lstm.attrs["batch_first"] is False and lstm.attrs["input_batch_axis"] == 1
    assert graph["fc"].output_shape == (None, 3)


def test_convnext_permutes():
    model, x, graph = _graph("convnext_block")
    to_nhwc, back = graph["block.permute"], graph["block.permute_1"]
    assert to_nhwc.output_shape == (None, 8, 8, 16) and isinstance(to_nhwc.output_shape, FeaturesLast)
    assert back.output_shape == (None, 8, 8, 16) and not isinstance(back.output_shape, FeaturesLast)
    assert graph.display_shape(to_nhwc.output_shape) == (None, 8, 8, 16)
    assert graph.display_shape(back.output_shape) == (None, 16, 8, 8)
    assert graph["block.norm"].attrs["axis"] == -1
    assert graph["block.add"].output_shape == graph["stem"].output_shape == (None, 8, 8, 16)
    assert graph["mean"].op == "global_pool" and graph["mean"].output_shape == (None, 16)


@pytest.mark.parametrize("name", ["conv1d", "convnext_block", "lstm_tagger"])
def test_torchscript_infers_the_same_layouts(name):
    model, x, graph = _graph(name)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(model.eval(), x) if name != "lstm_tagger" else torch.jit.script(model), buf)
    buf.seek(0)
    ts = graph_from_torchscript(torch.jit.load(buf), input_shape=tuple(x.shape))
    rows = lambda g: [(n.op, n.output_shape, n.attrs.get("layout")) for n in g if n.op != "input"]  # noqa: E731
    assert rows(ts) == rows(graph)


def test_per_position_head_is_seen():
    """nn.Linear(64, 1) on every token of (N, 100, 64) gives (N, 100, 1): units 1, 100 positions (ML304)."""
    class Scorer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(500, 64)
            layer = nn.TransformerEncoderLayer(64, nhead=4, dim_feedforward=128, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
            self.head = nn.Linear(64, 1)

        def forward(self, tokens):
            return self.head(self.encoder(self.embed(tokens)))

    report = analyze(Scorer(), example_inputs=torch.zeros(8, 100, dtype=torch.long), task="regression",
                     loss="MSELoss")
    assert report.graph["head"].output_shape == (None, 100, 1)
    (f,) = [f for f in report.findings if f.code == "ML304"]
    assert f.evidence["output_shape"] == [None, 100, 1] and f.evidence["positions"] == [100]


class ChannelShuffle(nn.Module):
    """A ShuffleNet v2 unit's shape: conv, channel shuffle (view -> transpose -> view), chunk,
    a 1x1 conv and a depthwise 3x3 on one half, concat, a 1x1 conv. Width 5 on purpose: neither
    the channels (8) nor their halves (4)."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 1, bias=False)
        self.pw = nn.Conv2d(4, 4, 1, bias=False)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.head = nn.Conv2d(8, 10, 1, bias=False)

    def forward(self, x):
        x = self.conv0(x)
        b, c, h, w = x.shape
        x = x.view(b, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        x = x.view(b, c, h, w)
        x1, x2 = x.chunk(2, dim=1)
        return self.head(torch.cat((x1, self.dw(self.pw(x2))), dim=1))


@pytest.mark.parametrize("capture", ["fx", "export", "hooks"])
def test_channel_shuffle_keeps_the_channels_at_dim_1(capture):
    """After the shuffle the features are back at dim 1: the convs read 4 and 8 input channels,
    not the width (5). MACs per sample by hand, on the 6 x 5 map: conv0 6*5*3*8 = 720,
    pw 6*5*4*4 = 480, dw 6*5*4*9 = 1,080, head 6*5*8*10 = 2,400 (torchvision's
    shufflenet_v2_x0_5 stage2.1.branch2.0 read 526,848 MACs for 28*28*24*24 = 451,584)."""
    graph = graph_from_module(ChannelShuffle(), input_shape=(2, 3, 6, 5), capture=capture)
    macs = node_costs(graph)
    assert {n: macs[n].macs for n in ("conv0", "pw", "dw", "head")} == \
        {"conv0": 720, "pw": 480, "dw": 1080, "head": 2400}
    assert graph["pw"].output_shape == (None, 6, 5, 4) and not isinstance(graph["pw"].output_shape, FeaturesLast)
    shuffled = [n for n in graph if n.op == "reshape"][-1]  # the view that merges the groups back
    assert shuffled.output_shape == (None, 6, 5, 8) and not isinstance(shuffled.output_shape, FeaturesLast)
    assert graph.display_shape(shuffled.output_shape) == (None, 8, 6, 5)
    assert graph["head"].output_shape == (None, 6, 5, 10)
