"""Issue 12: a PyTorch graph's totals are what the framework holds, always.

Weights the forward pass does not reach (an auxiliary head that runs only in
training mode) go on the graph's node-less ledger and are named in its notes;
parameters the forward reads directly (``x * self.scale``, a value computed from
parameters alone) are counted once, on a node.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from modellint.adapters.torch_live import (  # noqa: E402
    graph_from_exported_program,
    graph_from_module,
    graph_from_torchscript,
)

pytestmark = pytest.mark.torch


def held(model) -> tuple:
    """(total, trainable) as the framework holds them: sum(p.numel()) and its requires_grad
    split, plus BatchNorm's running statistics (non-trainable, as the graph counts them)."""
    params = list(model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in params) + stats, sum(p.numel() for p in params if p.requires_grad)


class AuxNet(nn.Module):
    """An Inception-style auxiliary classifier that runs only in training mode."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.AuxLogits = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        x = self.stem(x)
        out = self.head(x)
        if self.training:  # the auxiliary loss's term, only while training
            out = out + self.AuxLogits(x)
        return out


class RawParams(nn.Module):
    """Parameters read directly by functions: a scale, a bias made to match the input's
    dtype, and a DiffAttention-style scalar computed from parameters alone."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.scale = nn.Parameter(torch.ones(16))
        self.shift = nn.Parameter(torch.zeros(16))
        self.lambda_q = nn.Parameter(torch.zeros(4))
        self.lambda_k = nn.Parameter(torch.zeros(4))
        self.frozen = nn.Parameter(torch.ones(16), requires_grad=False)
        self.unused = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        lam = torch.exp(torch.sum(self.lambda_q * self.lambda_k, dim=-1).float()).type_as(x)
        y = self.fc(x) * self.scale + self.shift.type_as(x)
        return y * lam + self.frozen


CAPTURES = ("fx", "export", "hooks")


@pytest.mark.parametrize("capture", CAPTURES)
def test_aux_head_skipped_in_eval_is_on_the_ledger(capture):
    model = AuxNet()
    g = graph_from_module(model, input_shape=(1, 3, 8, 8), capture=capture)
    assert (g.total_params, g.trainable_params) == held(model)
    aux = sum(p.numel() for p in model.AuxLogits.parameters())
    assert [(e.name, e.params, e.trainable_params) for e in g.ledger] == [("AuxLogits", aux, aux)]
    assert "not reached" in g.ledger[0].why
    assert any(n.startswith("not reached in eval mode: AuxLogits (17 k params)") for n in g.notes), g.notes
    assert not any(n.name.startswith("AuxLogits") for n in g)
    assert sum(n.params for n in g) + aux == g.total_params
    assert g.to_dict()["ledger"][0]["name"] == "AuxLogits"
    assert model.training  # the module's own mode is restored


@pytest.mark.parametrize("capture", CAPTURES)
def test_parameters_read_directly_are_counted_once_on_nodes(capture):
    model = RawParams()
    g = graph_from_module(model, input_shape=(2, 16), capture=capture)
    assert (g.total_params, g.trainable_params) == held(model)
    # only the parameter the forward never reads is off the nodes
    assert [(e.name, e.params) for e in g.ledger] == [("unused", 3)]
    assert "not used" in g.ledger[0].why
    on_nodes = sum(n.params for n in g)
    assert on_nodes == sum(p.numel() for p in model.parameters()) - 3
    assert sum(n.params - n.trainable_params for n in g) == 16  # the frozen one, on a node


def test_tied_weights_count_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.out = nn.Linear(8, 50, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, x):
            return self.out(self.emb(x))

    model = Tied()
    g = graph_from_module(model, input_shape=(1, 5))
    assert (g.total_params, g.trainable_params) == held(model) == (400, 400)
    assert not g.ledger


def test_exported_program_and_torchscript_keep_the_totals():
    model = AuxNet().eval()
    ep = torch.export.export(model, (torch.randn(1, 3, 8, 8),))
    g = graph_from_exported_program(ep)
    assert g.total_params == held(model)[0]
    aux = sum(p.numel() for p in model.AuxLogits.parameters())
    if g.ledger:  # export keeps every parameter of the module as an input
        assert [(e.name, e.params) for e in g.ledger] == [("AuxLogits", aux)]

    scripted = torch.jit.script(AuxNet().eval())
    g = graph_from_torchscript(scripted, input_shape=(1, 3, 8, 8))
    assert (g.total_params, g.trainable_params) == held(scripted)
    assert [(e.name, e.params) for e in g.ledger] == [("AuxLogits", aux)]
    assert any(n.startswith("not reached in eval mode: AuxLogits") for n in g.notes)


def test_a_model_whose_forward_reaches_everything_has_no_ledger():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    g = graph_from_module(model, input_shape=(1, 3, 8, 8))
    assert not g.ledger
    assert "ledger" not in g.to_dict()
    assert (g.total_params, g.trainable_params) == held(model)
