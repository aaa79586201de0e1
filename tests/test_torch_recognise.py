"""Issue 12: PyTorch ops recognised by what they compute, not left unknown.

Functions (attention, splits, reductions, einsum, sorting), subclasses of torch.nn
layers that override ``forward`` (read as their base class when they behave as
it), torchvision/timm modules named in the table (checked by behaviour), and
modules without children traced through. No torchvision or timm here: their
classes are restated.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from modellint import ops  # noqa: E402
from modellint.adapters.torch_live import graph_from_module  # noqa: E402
from modellint.analysis import total_macs  # noqa: E402

pytestmark = pytest.mark.torch
CAPTURES = ("fx", "export", "hooks")


def known(graph):
    return [n for n in graph if n.op not in ("input", "unknown")]


def unknown(graph):
    return [(n.name, n.source_type) for n in graph if n.op == "unknown"]


# -- functions ----------------------------------------------------------------------

class Attention(nn.Module):
    """timm's Attention: qkv reshaped to (3, B, heads, N, dim), unbound, F.sdpa."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("capture", CAPTURES)
def test_attention_by_functions(capture):
    g = graph_from_module(Attention(), input_shape=(1, 5, 16), capture=capture)
    assert not unknown(g), unknown(g)
    ops_seen = [n.op for n in g]
    assert "sdpa" in ops_seen and "split" in ops_seen and "transpose" in ops_seen
    sdpa = next(n for n in g if n.op == "sdpa")
    assert sdpa.attrs["num_heads"] == 2 and sdpa.attrs["key_dim"] == 8
    assert sdpa.output_shape == (None, 2, 5, 8)
    split = next(n for n in g if n.op == "split")
    assert split.attrs == {"dim": 0, "parts": 3, "squeeze": True, **({"layout": split.attrs["layout"]}
                                                                      if "layout" in split.attrs else {})}
    # MACs: two Linear layers and q k^T, attn v: heads x 5 x 5 x (8 + 8)
    assert total_macs(g) == 5 * 16 * 48 + 5 * 16 * 16 + 2 * 5 * 5 * 16


def test_splits_reductions_einsum_sort():
    class Net(nn.Module):
        def forward(self, x):  # (B, 8, 4, 4)
            a, b = x.chunk(2, dim=1)
            c, d = torch.split(a, [1, 3], dim=1)
            s = torch.einsum("bchw,bdhw->bcd", b, d)  # (B, 4, 3)
            m = s.mean(-1) + d.sum((1, 2, 3)).unsqueeze(-1)  # a reduction over channels, over all
            v, i = torch.topk(m, 2, dim=-1)
            return v + torch.stack([c.amax((1, 2, 3)), c.std((1, 2, 3))], dim=1)

    g = graph_from_module(Net(), input_shape=(1, 8, 4, 4))
    assert not unknown(g), unknown(g)
    by_op = {}
    for n in known(g):
        by_op.setdefault(n.op, []).append(n)
    assert [n.attrs["sizes"] for n in by_op["split"]] == [(4, 4), (1, 3)]
    es = by_op["einsum"][0]
    assert es.attrs["equation"] == "bchw,bdhw->bcd"
    assert ops.count_macs("einsum", es.attrs, [], []) == 4 * 3 * 4 * 4  # b=1 c=4 d=3 h=w=4
    assert {n.attrs["mode"] for n in by_op["reduce"]} >= {"sum", "std", "max"}
    assert by_op["sort"][0].attrs["k"] == 2 and by_op["stack"][0].attrs["dim"] == 1
    assert g.display_shape(g.shape_of(g.outputs[0])) == (None, 2)


# -- modules ------------------------------------------------------------------------

class StochasticDepth(nn.Module):  # torchvision.ops.StochasticDepth, restated
    def __init__(self, p, mode="row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty([x.shape[0]] + [1] * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Permute(nn.Module):  # torchvision.ops.misc.Permute
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class LayerNorm2d(nn.LayerNorm):  # torchvision's ConvNeXt LayerNorm2d
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Linear(nn.Linear):  # timm.layers.Linear
    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Conv2dSame(nn.Conv2d):  # timm.layers.Conv2dSame: TF "same" padding at run time
    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        ph = max((-(-ih // self.stride[0]) - 1) * self.stride[0] + (kh - 1) + 1 - ih, 0)
        pw = max((-(-iw // self.stride[1]) - 1) * self.stride[1] + (kw - 1) + 1 - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Sigmoid(nn.Module):  # timm.layers.activations.Sigmoid
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x.sigmoid_() if self.inplace else x.sigmoid()


class LayerScale(nn.Module):  # timm.layers.LayerScale
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(1e-5 * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):  # a ConvNeXt block with timm's and torchvision's pieces
    def __init__(self, c=8):
        super().__init__()
        self.stem = Conv2dSame(3, c, 3, stride=2)
        self.norm = LayerNorm2d(c)
        self.to_nhwc = Permute([0, 2, 3, 1])
        self.fc = Linear(c, c)
        self.act = Sigmoid()
        self.ls = LayerScale(c)
        self.drop = StochasticDepth(0.1)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        x = self.norm(self.stem(x))
        y = self.ls(self.act(self.fc(self.to_nhwc(x))))
        x = x.permute(0, 2, 3, 1) + self.drop(y)
        return self.head(x.mean((1, 2)))


@pytest.mark.parametrize("capture", CAPTURES)
def test_modules_recognised_by_base_class_name_and_behaviour(capture):
    model = Block()
    g = graph_from_module(model, input_shape=(1, 3, 9, 9), capture=capture)
    assert not unknown(g), unknown(g)
    assert g["stem"].op == "conv" and g["stem"].attrs["padding"] == "same"
    assert g["stem"].output_shape == (None, 5, 5, 8)
    assert g["norm"].op == "layernorm" and g["norm"].attrs["axis"] == -1  # the channels
    assert g["to_nhwc"].op == "permute" and g["to_nhwc"].attrs["dims"] == (2, 3, 1)
    assert g["fc"].op == "dense" and g["fc"].attrs["units"] == 8
    assert g["act"].op == "activation" and g["act"].attrs["function"] == "sigmoid"
    assert g["act"].source_type.endswith("Sigmoid")
    assert g["ls"].op == "scale" and g["ls"].params == 8
    if capture != "export":  # export records no op of a module that returns its input, as for nn.Identity
        assert g["drop"].op == "dropout" and g["drop"].attrs["variant"] == "stochastic_depth"
        assert g["drop"].attrs["rate"] == 0.1
    assert g.total_params == sum(p.numel() for p in model.parameters())


def test_a_subclass_that_does_something_else_stays_unknown():
    class Doubling(nn.Linear):  # a Linear by its base class, but its output is twice as wide
        def forward(self, x):
            y = F.linear(x, self.weight, self.bias)
            return torch.cat([y, y], dim=-1)

    g = graph_from_module(nn.Sequential(Doubling(4, 4)), input_shape=(1, 4))
    node = g["0"]
    assert node.op == "unknown" and node.params == 20
    assert any("read as torch.nn.Linear (its base class), but features differ" in n for n in node.notes)


def test_modules_without_children_are_traced_through():
    class Swishish(nn.Module):  # several functions: each its own node, under the module's path
        def forward(self, x):
            return x * torch.sigmoid(x) + 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.act = Swishish()
            self.ls = LayerScale(8)

        def forward(self, x):
            return self.ls(self.ls(self.act(self.fc(x))))  # ls called twice: its weights count once

    g = graph_from_module(Net(), input_shape=(1, 8))
    assert [n.name for n in g] == ["x", "fc", "act.sigmoid", "act.mul", "act.add", "ls", "ls@1"]
    assert [g[n].op for n in ("act.sigmoid", "act.mul", "act.add")] == ["activation", "multiply", "rescaling"]
    assert g["ls@1"].shares_params_with == "ls" and g["ls"].params == 8 and g["ls@1"].params == 0
    assert g.total_params == 72 + 8
