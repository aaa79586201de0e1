"""Live PyTorch counting (issue 12): MACs per sample where the batch is not dim 0 (a
seq-first ``nn.TransformerEncoder``, ``nn.MultiheadAttention`` and RNNs with
``batch_first=False``), and every layer of a multi-layer RNN (``num_layers``).

Truths are independent of modellint: MACs counted by hand from the module's sizes, and
``sum(p.numel())``; then parity with the ONNX reader on the same module exported by both
exporters (tests/test_onnx_counting.py checks that reader against the same hand counts)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

pytestmark = pytest.mark.torch

from modellint.adapters.torch_live import graph_from_module  # noqa: E402
from modellint.analysis import total_macs  # noqa: E402
from modellint.analysis.cost import node_costs  # noqa: E402

CAPTURES = ["fx", "export", "hooks"]
EXPORTERS = ["dynamo", "torchscript"]


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def capture(module, shape, how):
    """The graph by one capture, or a skip where that capture cannot trace the module
    (torch.fx cannot trace nn.TransformerEncoder's fast-path checks)."""
    try:
        return graph_from_module(module.eval(), input_shape=shape, capture=how)
    except Exception as exc:
        if how == "fx" and "control flow" in str(exc):
            pytest.skip(f"torch.fx cannot trace this module: {exc}")
        raise


def onnx_graph(module, shape, path, exporter):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from modellint.adapters.onnx_file import read_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch.randn(*shape)
        if exporter == "dynamo":
            torch.onnx.export(module.eval(), (x,), str(path), dynamo=True, external_data=False, verbose=False)
        else:
            try:
                torch.onnx.export(module.eval(), (x,), str(path), dynamo=False)
            except Exception as exc:  # the legacy exporter may be gone in a later torch
                pytest.skip(f"TorchScript-based ONNX exporter unavailable: {exc}")
    return read_onnx(path)


# ---------------------------------------------------------------------------
# a seq-first transformer: the ViT of tests/test_onnx_counting.py, D = 64
# ---------------------------------------------------------------------------

D, HEADS, FF, DEPTH, PATCH, IMG, CLASSES = 64, 4, 128, 2, 8, 32, 10
TOKENS = (IMG // PATCH) ** 2 + 1  # 17


class ViT(nn.Module):
    def __init__(self, batch_first=False):
        super().__init__()
        self.batch_first = batch_first
        self.patch = nn.Conv2d(3, D, PATCH, PATCH)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(torch.zeros(1, TOKENS, D))
        layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=batch_first)
        self.enc = nn.TransformerEncoder(layer, DEPTH, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, CLASSES)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.enc(x) if self.batch_first else self.enc(x.transpose(0, 1)).transpose(0, 1)
        return self.head(self.norm(x[:, 0]))


def encoder_layer_macs(t=TOKENS) -> int:
    hd = D // HEADS
    return (t * D * 3 * D  # q, k, v projections
            + 2 * HEADS * t * t * hd  # q k^T and the weighted sum of v
            + t * D * D  # output projection
            + 2 * t * D * FF)  # feed-forward


def vit_macs() -> int:
    patches = (IMG // PATCH) ** 2 * (3 * PATCH * PATCH) * D
    return patches + DEPTH * encoder_layer_macs() + D * CLASSES


def test_hand_counts():
    """The figures the issue quotes: 1,385,344 per sample (the seq-first reader counted 263,040)."""
    assert encoder_layer_macs() == 17 * 64 * 192 + 2 * 4 * 17 * 17 * 16 + 17 * 64 * 64 + 2 * 17 * 64 * 128 == 594_048
    assert vit_macs() == 16 * 192 * 64 + 2 * 594_048 + 640 == 1_385_344


@pytest.mark.parametrize("how", CAPTURES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_vit_macs_per_sample(how, batch_first):
    torch.manual_seed(0)
    module = ViT(batch_first)
    g = capture(module, (1, 3, IMG, IMG), how)
    assert g.total_params == numel(module)
    assert total_macs(g) == vit_macs(), (how, batch_first)
    costs = node_costs(g)
    layer = sum(c.macs for name, c in costs.items() if name.startswith("enc.layers.0."))
    assert layer == encoder_layer_macs()
    assert costs["enc.layers.0.linear1"].macs == TOKENS * D * FF  # one Linear per token


@pytest.mark.parametrize("how", CAPTURES)
def test_seq_first_shapes_show_the_batch_where_it_is(how):
    torch.manual_seed(0)
    g = capture(ViT(False), (1, 3, IMG, IMG), how)
    assert g["enc.layers.0.self_attn"].output_shape == (TOKENS, None, D)
    assert g.display_shape(g["enc.layers.0.linear1"].output_shape) == (TOKENS, None, FF)
    assert g["enc.layers.0.linear1"].attrs["batch_axis"] == 1
    assert g["head"].output_shape == (None, CLASSES) and "batch_axis" not in g["head"].attrs
    # activation memory per sample counts the sequence: 17 x 64 float32
    assert node_costs(g)["enc.layers.0.norm1"].activation_bytes == TOKENS * D * 4
    assert node_costs(g)["enc.layers.0.norm1"].bytes_known


def test_seq_first_batch_of_two():
    """A batch of 2: the batch axis is the one of size 2, the MACs still per sample."""
    torch.manual_seed(0)
    g = capture(ViT(False), (2, 3, IMG, IMG), "export")
    assert total_macs(g) == vit_macs()
    assert g["enc.layers.1.linear2"].output_shape == (TOKENS, None, D)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_vit_parity_with_onnx(tmp_path, exporter):
    torch.manual_seed(0)
    module = ViT(False)
    live = capture(module, (1, 3, IMG, IMG), "export")
    g = onnx_graph(module, (1, 3, IMG, IMG), tmp_path / "vit.onnx", exporter)
    assert total_macs(live) == total_macs(g) == vit_macs()
    assert live.total_params == g.total_params == numel(module)


# ---------------------------------------------------------------------------
# nn.MultiheadAttention on its own, both layouts
# ---------------------------------------------------------------------------

T, E = 9, 32


class Attend(nn.Module):
    """(batch, T, E) in, as every input here; a seq-first layer is fed it transposed."""

    def __init__(self, batch_first):
        super().__init__()
        self.batch_first = batch_first
        self.inp = nn.Linear(E, E)
        self.attn = nn.MultiheadAttention(E, HEADS, batch_first=batch_first)
        self.out = nn.Linear(E, 5)

    def forward(self, x):
        x = self.inp(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        x = self.attn(x, x, x, need_weights=False)[0]
        if not self.batch_first:
            x = x.transpose(0, 1)
        return self.out(x)


def attend_macs() -> int:
    hd = E // HEADS
    attn = T * E * 3 * E + 2 * HEADS * T * T * hd + T * E * E
    return T * E * E + attn + T * E * 5


@pytest.mark.parametrize("how", CAPTURES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_macs(how, batch_first):
    assert attend_macs() == 9 * 32 * 32 + (9 * 32 * 96 + 2 * 4 * 81 * 8 + 9 * 32 * 32) + 9 * 32 * 5 == 52_704
    torch.manual_seed(0)
    module = Attend(batch_first)
    g = capture(module, (1, T, E), how)
    assert total_macs(g) == attend_macs(), (how, batch_first)
    assert g["attn"].output_shapes[0] == ((None, T, E) if batch_first else (T, None, E))
    assert g["attn"].attrs.get("batch_axis", 0) == (0 if batch_first else 1)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_parity_with_onnx(tmp_path, exporter, batch_first):
    torch.manual_seed(0)
    module = Attend(batch_first)
    g = onnx_graph(module, (1, T, E), tmp_path / "mha.onnx", exporter)
    assert total_macs(capture(module, (1, T, E), "export")) == total_macs(g) == attend_macs()


# ---------------------------------------------------------------------------
# recurrent layers: num_layers=2, bidirectional, both layouts
# ---------------------------------------------------------------------------

STEPS, F, U = 7, 12, 16
GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def rnn_macs(cell, layers=2, bidirectional=True, proj=0) -> int:
    dirs = 2 if bidirectional else 1
    r = proj or U
    per_step = 0
    for i in range(layers):
        f = F if i == 0 else r * dirs
        per_step += dirs * (GATES[cell] * (f * U + r * U) + (r * U if proj else 0))
    return STEPS * per_step


class Seq(nn.Module):
    """``transpose``: a batch-first input made time-major for a ``batch_first=False`` layer;
    without it the input goes in as it is (as tests/test_onnx_counting.py exports it)."""

    def __init__(self, cell, batch_first, transpose=False, **kw):
        super().__init__()
        self.transpose = transpose
        self.rnn = cell(F, U, num_layers=2, bidirectional=True, batch_first=batch_first, **kw)
        self.fc = nn.Linear(2 * (kw.get("proj_size") or U), 3)

    def forward(self, x):
        if self.transpose:
            x = x.transpose(0, 1)
        out = self.rnn(x)[0]
        if self.transpose:
            out = out.transpose(0, 1)
        return self.fc(out)


def test_rnn_hand_counts():
    assert rnn_macs(nn.LSTM) == 7 * (2 * 4 * (12 * 16 + 16 * 16) + 2 * 4 * (32 * 16 + 16 * 16)) == 68_096
    assert rnn_macs(nn.GRU) == 51_072


def seq_input(batch_first, transpose):
    return (1, STEPS, F) if batch_first or transpose else (STEPS, 1, F)


@pytest.mark.parametrize("how", CAPTURES)
@pytest.mark.parametrize("batch_first,transpose", [(True, False), (False, True), (False, False)],
                         ids=["batch_first", "seq_first_transposed", "seq_first_input"])
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_rnn_counts_every_layer_and_step(how, cell, batch_first, transpose):
    module = Seq(cell, batch_first, transpose)
    g = capture(module, seq_input(batch_first, transpose), how)
    assert g.total_params == numel(module)
    fc = STEPS * 2 * U * 3
    assert total_macs(g) - node_costs(g)["fc"].macs == rnn_macs(cell), (how, batch_first, transpose)
    if batch_first or transpose:
        assert node_costs(g)["fc"].macs == fc  # what follows the RNN counts every step too
    if transpose:
        assert g["rnn"].output_shapes[0] == (STEPS, None, 2 * U)


def test_lstm_with_projections():
    module = Seq(nn.LSTM, True, proj_size=8)
    g = capture(module, (1, STEPS, F), "fx")
    assert g.total_params == numel(module)
    assert node_costs(g)["rnn"].macs == rnn_macs(nn.LSTM, proj=8)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("batch_first,transpose", [(True, False), (False, True), (False, False)],
                         ids=["batch_first", "seq_first_transposed", "seq_first_input"])
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_rnn_parity_with_onnx(tmp_path, exporter, cell, batch_first, transpose):
    module = Seq(cell, batch_first, transpose).eval()
    shape = seq_input(batch_first, transpose)
    g = onnx_graph(module, shape, tmp_path / "rnn.onnx", exporter)
    live = capture(module, shape, "export")
    rnn = sum(c.macs for name, c in node_costs(g).items() if name.startswith("rnn"))
    assert rnn == node_costs(live)["rnn"].macs == rnn_macs(cell)
    if batch_first or transpose:
        assert total_macs(live) == total_macs(g)
    assert live.total_params == g.total_params == numel(module)
