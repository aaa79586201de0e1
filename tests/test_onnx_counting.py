"""ONNX counting (issue 12): parameters of initializers the exporter stored once for
several layers, MACs per sample of MatMul/Gemm/Einsum whose batch is not axis 0
(``nn.MultiheadAttention``'s (seq, batch, dim) layout), and LSTM/GRU/RNN steps.

Truths are independent of modellint: ``sum(p.numel())`` of the module (which counts
a parameter once per object, so ties and modules called again count once) and MACs
counted by hand from the module's sizes."""

from __future__ import annotations

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
nn = torch.nn

pytestmark = [pytest.mark.onnx, pytest.mark.torch]

from modellint import load_graph  # noqa: E402
from modellint.adapters.onnx_file import read_onnx  # noqa: E402
from modellint.analysis import total_macs  # noqa: E402

EXPORTERS = ["dynamo", "torchscript"]


def export(module, example, path, exporter, dynamic_batch=False):
    """Export as a user would: the dynamo exporter with its optimiser on (it deduplicates
    identical initializers and drops zero biases), the TorchScript one with its defaults."""
    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            kw = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamic_batch else {}
            torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False, verbose=False, **kw)
        else:
            kw = {"input_names": ["x"], "dynamic_axes": {"x": {0: "batch_size"}}} if dynamic_batch else {}
            try:
                torch.onnx.export(module, (example,), str(path), dynamo=False, **kw)
            except Exception as exc:  # the legacy exporter may be gone in a later torch
                pytest.skip(f"TorchScript-based ONNX exporter unavailable: {exc}")
    return read_onnx(path)


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# a small ViT: a seq-first nn.TransformerEncoder (deep copies of one layer), zero
# biases, LayerNorm weights of ones, a class token and position embedding of zeros
# ---------------------------------------------------------------------------

D, HEADS, FF, DEPTH, PATCH, IMG, CLASSES = 32, 4, 64, 2, 8, 32, 10
TOKENS = (IMG // PATCH) ** 2 + 1  # 17


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, D, PATCH, PATCH)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(torch.zeros(1, TOKENS, D))
        layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0)  # batch_first=False: (seq, batch, dim)
        self.enc = nn.TransformerEncoder(layer, DEPTH, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, CLASSES)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.enc(x.transpose(0, 1)).transpose(0, 1)
        return self.head(self.norm(x[:, 0]))


def vit_macs() -> int:
    """By hand, per sample."""
    t, hd = TOKENS, D // HEADS
    patches = (IMG // PATCH) ** 2 * (3 * PATCH * PATCH) * D
    layer = (t * D * 3 * D  # q, k, v projection
             + 2 * HEADS * t * t * hd  # q k^T and the weighted sum of v
             + t * D * D  # output projection
             + 2 * t * D * FF)  # feed-forward
    return patches + DEPTH * layer + D * CLASSES


@pytest.fixture(scope="module", params=EXPORTERS)
def vit(request, tmp_path_factory):
    torch.manual_seed(0)
    module = ViT()
    g = export(module, torch.randn(1, 3, IMG, IMG), tmp_path_factory.mktemp("vit") / "vit.onnx", request.param)
    return module, g, request.param


def test_vit_params_as_the_framework_holds_them(vit):
    module, g, exporter = vit
    assert g.total_params == g.trainable_params == numel(module), exporter
    proto = onnx.load(g.source_path)
    stored = sum(int(torch.tensor(list(t.dims)).prod()) for t in proto.graph.initializer)
    assert stored < numel(module), "the exporter no longer deduplicates: this test proves nothing"
    note = next(n for n in g.notes if "once for" in n)
    assert "each layer counts its own" in note
    # the second encoder layer holds its own LayerNorms, as the module does
    assert g.nodes["enc.layers.1.norm2"].params == 2 * D


def test_vit_macs_per_sample_count_the_sequence(vit):
    _, g, exporter = vit
    assert total_macs(g) == vit_macs(), exporter


def test_vit_with_a_symbolic_batch(tmp_path):
    torch.manual_seed(0)
    module = ViT()
    g = export(module, torch.randn(2, 3, IMG, IMG), tmp_path / "vit.onnx", "dynamo", dynamic_batch=True)
    assert g.total_params == numel(module)
    assert total_macs(g) == vit_macs()  # (17*batch, D) rows of the output projection count 17


# ---------------------------------------------------------------------------
# sharing that the framework counts once
# ---------------------------------------------------------------------------

class CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.b(self.a(torch.relu(self.a(x))))


class Clones(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = copy.deepcopy(self.a)  # equal values, two parameters

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class TiedLM(nn.Module):
    def __init__(self, vocab=50, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.ff = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, t):
        return self.head(torch.relu(self.ff(self.emb(t))))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_module_called_twice_counts_once_and_clones_each(tmp_path, exporter):
    twice = CalledTwice()
    g = export(twice, torch.randn(1, 8), tmp_path / "twice.onnx", exporter)
    assert g.total_params == numel(twice) == 108
    assert not any("once for" in n for n in g.notes)
    clones = Clones()
    g = export(clones, torch.randn(1, 8), tmp_path / "clones.onnx", exporter)
    assert g.total_params == numel(clones) == 144
    assert any("the exporter stored 2 initializers once for 4 layers (72 parameters" in n for n in g.notes)


def test_tied_embedding_counts_once(tmp_path):
    """The dynamo exporter stores the tied projection as a transposed copy; its record of the
    parameters each node used names the embedding's."""
    lm = TiedLM()
    g = export(lm, torch.randint(0, 50, (1, 5)), tmp_path / "lm.onnx", "dynamo")
    assert g.total_params == numel(lm) == 50 * 16 + 16 * 16 + 16
    assert any("transposed copy of a tied parameter" in n for n in g.notes)


# ---------------------------------------------------------------------------
# recurrent layers: steps from the sequence axis of either layout
# ---------------------------------------------------------------------------

T, F, U = 7, 12, 16
GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def rnn_macs(cell, layers=2, bidirectional=True) -> int:
    dirs = 2 if bidirectional else 1
    per_step = 0
    for i in range(layers):
        f = F if i == 0 else U * dirs
        per_step += dirs * GATES[cell] * (f * U + U * U)
    return T * per_step


class Seq(nn.Module):
    def __init__(self, cell, batch_first):
        super().__init__()
        self.rnn = cell(F, U, num_layers=2, bidirectional=True, batch_first=batch_first)

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_rnn_macs_count_every_step(tmp_path, exporter, batch_first, cell):
    module = Seq(cell, batch_first)
    x = torch.randn(1, T, F) if batch_first else torch.randn(T, 1, F)
    g = export(module, x, tmp_path / "rnn.onnx", exporter)
    assert g.total_params == numel(module)
    assert total_macs(g) == rnn_macs(cell)
    # a (seq, batch, features) input is not a fixed batch of 7
    assert not any("fixed batch" in n for n in g.notes)


def test_simple_rnn_torchscript(tmp_path):
    module = Seq(nn.RNN, False)
    g = export(module, torch.randn(T, 1, F), tmp_path / "rnn.onnx", "torchscript")
    assert g.total_params == numel(module) and total_macs(g) == rnn_macs(nn.RNN)


# ---------------------------------------------------------------------------
# parity with the live PyTorch reader where it reads batch-first sequences
# ---------------------------------------------------------------------------

class BatchFirstBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(F, D)
        self.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
        self.ff = nn.Linear(D, D)

    def forward(self, x):
        x = self.inp(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.ff(x)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_batch_first_block_matches_hand_count_and_live_reader(tmp_path, exporter):
    torch.manual_seed(0)
    module = BatchFirstBlock().eval()
    g = export(module, torch.randn(1, T, F), tmp_path / "block.onnx", exporter)
    hand = T * F * D + (T * D * 3 * D + 2 * HEADS * T * T * (D // HEADS) + T * D * D) + T * D * D
    assert total_macs(g) == hand
    assert g.total_params == numel(module)
    live = load_graph(module, input_shape=(1, T, F))
    assert total_macs(live) == hand and live.total_params == g.total_params


def test_einsum_macs_per_sample(tmp_path):
    class Bilinear(nn.Module):
        def forward(self, x):  # (batch, 5, 6) x (batch, 5, 6) -> (batch, 5, 5)
            return torch.einsum("bid,bjd->bij", x, x * 2.0)

    g = export(Bilinear(), torch.randn(1, 5, 6), tmp_path / "einsum.onnx", "dynamo")
    (node,) = [n for n in g if n.op == "einsum"]
    assert total_macs(g) == 5 * 5 * 6
