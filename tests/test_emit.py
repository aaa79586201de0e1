"""Emitters (issue 13): graph -> Keras / PyTorch code -> built in the framework -> read
back by modellint -> the same graph; weights read from the file and put back give the
same outputs; names from a hostile file never become code.

The truth each round trip is checked against is the framework's own model: the graph
read from it (ops, shapes, parameters per node, MACs, receptive field) and its outputs.
"""

import ast
import copy
import os

import numpy as np
import pytest

from conftest import EXAMPLES, keras_only
from modellint import load_graph
from modellint.analysis.cost import total_macs
from modellint.analysis.receptive_field import receptive_fields
from modellint.emit import EmitError, emit_keras, emit_torch
from modellint.graph import Graph, Node

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except Exception:
    HAVE_TORCH = False

needs_torch = [pytest.mark.torch, pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")]


def facts(graph, names=True):
    """What a round trip must keep: per node (name,) op, shapes, parameters; MACs; receptive fields."""
    rfs = receptive_fields(graph)
    nodes = [((n.name,) if names else ()) + (n.op, [tuple(s) if s else s for s in n.output_shapes],
                                             n.params, n.trainable_params) for n in graph]
    return {"nodes": nodes, "params": (graph.total_params, graph.trainable_params), "macs": total_macs(graph),
            "rf": sorted({(tuple(r.size), tuple(r.stride)) for r in rfs.values() if r is not None})}


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------

def _k():
    import keras
    from keras import layers

    return keras, layers


def k_conv1d():
    keras, L = _k()
    return keras.Sequential([keras.Input((20, 3)), L.Conv1D(4, 3, activation="relu"), L.MaxPooling1D(),
                             L.Conv1D(6, 3, padding="causal", dilation_rate=2), L.GlobalAveragePooling1D(),
                             L.Dense(2, activation="softmax")])


def k_cnn2d():
    keras, L = _k()
    return keras.Sequential([keras.Input((12, 12, 3)), L.Conv2D(4, 3, strides=2, padding="same", use_bias=False),
                             L.BatchNormalization(), L.Activation("relu"), L.AveragePooling2D(2),
                             L.Dropout(0.25), L.Flatten(), L.Dense(5, activation="softmax")])


def k_conv3d():
    keras, L = _k()
    return keras.Sequential([keras.Input((6, 7, 5, 2)), L.Conv3D(3, (3, 2, 1), activation="tanh"),
                             L.MaxPooling3D((1, 2, 2)), L.GlobalMaxPooling3D()])


def k_depthwise_separable():
    keras, L = _k()
    return keras.Sequential([keras.Input((10, 10, 3)), L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                             L.SeparableConv2D(8, 3, strides=2, activation="relu"), L.SpatialDropout2D(0.1),
                             L.GlobalAveragePooling2D(keepdims=True), L.Flatten(), L.Dense(3)])


def k_residual():
    keras, L = _k()
    inp = keras.Input((8, 8, 4), name="image")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.Conv2D(4, 3, padding="same", name="c2")(x)
    x = L.Add(name="skip")([inp, x])
    x = L.ReLU(name="post")(x)
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out, name="resblock")


def k_concat_multiply():
    keras, L = _k()
    inp = keras.Input((9, 9, 3))
    a = L.Conv2D(4, 1, name="branch_a")(inp)
    b = L.Conv2D(4, 3, padding="same", activation="sigmoid", name="branch_b")(inp)
    gated = L.Multiply(name="gate")([a, b])
    x = L.Concatenate(name="cat")([a, gated])
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool")(x)
    return keras.Model(inp, L.GlobalMaxPooling2D(name="gmp")(x))


def k_lstm_gru():
    keras, L = _k()
    return keras.Sequential([keras.Input((12,), dtype="int32"), L.Embedding(50, 8),
                             L.LSTM(6, return_sequences=True), L.GRU(5), L.Dense(3, activation="softmax")])


def k_bidirectional():
    keras, L = _k()
    return keras.Sequential([keras.Input((7, 4)), L.Bidirectional(L.LSTM(3, return_sequences=True)),
                             L.SimpleRNN(4), L.Dense(1, activation="sigmoid")])


def k_layernorm_seq():
    keras, L = _k()
    return keras.Sequential([keras.Input((5, 6)), L.Dense(8, activation="gelu"), L.LayerNormalization(),
                             L.Dense(4), L.GlobalAveragePooling1D()])


def k_preprocessing():
    keras, L = _k()
    return keras.Sequential([keras.Input((8, 8, 3)), L.Rescaling(1 / 127.5, offset=-1.0),
                             L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0]),
                             L.Conv2D(4, 3), L.GlobalAveragePooling2D()])


def k_reshape_transpose():
    keras, L = _k()
    return keras.Sequential([keras.Input((24,)), L.Dense(48), L.Reshape((4, 4, 3)),
                             L.Conv2DTranspose(2, 3, strides=2, padding="same"), L.UpSampling2D(),
                             L.ZeroPadding2D(1), L.Cropping2D(((1, 0), (0, 1))), L.Conv2D(1, 1)])


def k_activations():
    keras, L = _k()
    return keras.Sequential([keras.Input((6,)), L.Dense(6), L.LeakyReLU(0.2), L.Dense(6), L.ELU(),
                             L.Dense(6), L.ReLU(max_value=6.0), L.Dense(6), L.PReLU(), L.Dense(3), L.Softmax()])


KERAS_MODELS = [k_conv1d, k_cnn2d, k_conv3d, k_depthwise_separable, k_residual, k_concat_multiply, k_lstm_gru,
                k_bidirectional, k_layernorm_seq, k_preprocessing, k_reshape_transpose, k_activations]


def _random_input(graph, seed=0):
    rng = np.random.RandomState(seed)
    out = []
    for name in graph.inputs:
        node = graph.nodes[name]
        shape = tuple(2 if d is None else d for d in graph.display_shape(node.output_shape))
        if str(node.attrs.get("dtype", "")).startswith("int"):
            out.append(rng.randint(0, 50, size=shape).astype("int32"))
        else:
            out.append((rng.rand(*shape) * 4 - 2).astype("float32"))
    return out[0] if len(out) == 1 else out


def _keras_round_trip(model_or_path, tmp_path):
    """Graph -> emitted code -> model built from it -> graph; and the weights read from
    the saved file, put into the rebuilt model, give the original's outputs."""
    import keras

    from modellint.emit import save_keras
    from modellint.weights import read_weights

    if isinstance(model_or_path, (str, os.PathLike)):
        path = model_or_path
        original = keras.saving.load_model(path, compile=False)
    else:
        original = model_or_path
        path = tmp_path / "original.keras"
        original.save(path)
    graph = load_graph(path)
    source = emit_keras(graph)
    ast.parse(source)
    weights = read_weights(path, graph)
    out = tmp_path / "emitted.keras"
    rebuilt = save_keras(graph, out, weights)
    back = load_graph(rebuilt)
    assert facts(back) == facts(graph)
    assert facts(load_graph(out)) == facts(graph)
    # every layer with weights got its own back
    with_params = {n.name for n in graph if n.params and not n.shares_params_with}
    assert with_params <= set(weights), with_params - set(weights)
    x = _random_input(graph)
    want = np.asarray(original(x, training=False))
    got = np.asarray(rebuilt(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    return graph, back, source


@pytest.mark.keras
@keras_only
@pytest.mark.parametrize("name", ["seed_cnn.h5", "seed_cnn_fixed.keras", "seed_cnn_fixed.h5"])
def test_keras_seed_round_trip(name, tmp_path):
    graph, back, source = _keras_round_trip(EXAMPLES / name, tmp_path)
    assert back.training == graph.training          # compile config kept
    assert "def compile_model(model):" in source and "keras.optimizers.Adam(learning_rate=0.001" in source
    assert "layers.Dense(13, activation='softmax'" in source   # the fused activation folded back


@pytest.mark.keras
@keras_only
@pytest.mark.parametrize("builder", KERAS_MODELS, ids=lambda f: f.__name__)
def test_keras_round_trip(builder, tmp_path):
    _keras_round_trip(builder(), tmp_path)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

def _torch_modules():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SeqCNN(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, stride=2, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 5))

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            return F.relu(x + self.bn2(self.conv2(y)))

    class ResNetLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
            self.layer1 = nn.Sequential(Block(8), Block(8))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = self.pool(self.layer1(self.stem(x)))
            return self.fc(torch.flatten(x, 1))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act1 = nn.Linear(10, 16), nn.GELU()
            self.norm = nn.LayerNorm(16)
            self.fc2, self.act2 = nn.Linear(16, 8), nn.Tanh()
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            return torch.softmax(self.out(self.act2(self.fc2(self.norm(self.act1(self.fc1(x)))))), dim=1)

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.lstm = nn.LSTM(8, 12, batch_first=True)
            self.fc = nn.Linear(7 * 12, 3)

        def forward(self, x):
            out, _ = self.lstm(self.emb(x))
            return self.fc(torch.flatten(out, 1))

    class GRUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 6, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(5 * 12, 2)

        def forward(self, x):
            out, _ = self.gru(x)
            return self.head(out.flatten(1))

    class Conv1dNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(3, 6, 5, padding=2, dilation=1)
            self.bn = nn.BatchNorm1d(6)
            self.c2 = nn.Conv1d(6, 6, 3, groups=3, dilation=2)
            self.pool = nn.AvgPool1d(2)
            self.fc = nn.Linear(6 * 6, 2)

        def forward(self, x):
            x = self.pool(F.relu(self.c2(F.relu(self.bn(self.c1(x))))))
            return self.fc(torch.flatten(x, 1))

    class DepthwiseNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(4, 8, 3, padding=1, groups=4)
            self.pw = nn.Conv2d(8, 6, 1)
            self.act = nn.ReLU6()
            self.gap = nn.AdaptiveMaxPool2d(1)

        def forward(self, x):
            return self.gap(self.act(self.pw(self.dw(x))))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.act = nn.LeakyReLU(0.1)
            self.out = nn.Conv2d(3, 1, 1)

        def forward(self, x):
            return torch.sigmoid(self.out(self.act(self.bn(self.up(x)))))

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.b1 = nn.Conv2d(3, 4, 1)
            self.b3 = nn.Conv2d(3, 4, 3, padding=1)
            self.b5 = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 5, padding=2))
            self.pool = nn.MaxPool2d(3, stride=1, padding=1)
            self.proj = nn.Conv2d(12, 6, 1)

        def forward(self, x):
            y = torch.cat([self.b1(x), self.b3(x), self.b5(x)], dim=1)
            return self.proj(self.pool(F.relu(y)))

    class Conv3dNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(2, 4, 3, padding=1)
            self.act = nn.SiLU()
            self.pool = nn.MaxPool3d(2)
            self.drop = nn.Dropout3d(0.1)

        def forward(self, x):
            return self.drop(self.pool(self.act(self.conv(x))))

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            x = self.bn(self.conv(x / 255.0))
            x = x.mean((2, 3))
            return self.fc(x)

    img = {"input_shape": (2, 3, 16, 16)}
    return [
        ("seq_cnn", SeqCNN, img), ("resnet_like", ResNetLike, img), ("mlp", MLP, {"input_shape": (2, 10)}),
        ("lstm_classifier", LSTMClassifier, {"example_inputs": (torch.randint(0, 50, (2, 7)),)}),
        ("gru_bidirectional", GRUNet, {"input_shape": (2, 5, 4)}),
        ("conv1d", Conv1dNet, {"input_shape": (2, 3, 16)}), ("depthwise", DepthwiseNet, {"input_shape": (2, 4, 8, 8)}),
        ("decoder", Decoder, {"input_shape": (2, 4, 5, 5)}), ("inception", Inception, {"input_shape": (2, 3, 9, 9)}),
        ("conv3d", Conv3dNet, {"input_shape": (2, 2, 6, 6, 6)}), ("scaled_mean", Scaled, img),
    ]


TORCH_CASES = _torch_modules() if HAVE_TORCH else []


@pytest.mark.parametrize("name,factory,kw", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
@pytest.mark.torch
def test_torch_round_trip(name, factory, kw, one_thread):
    import torch

    from modellint.emit import build_torch
    from modellint.weights import read_weights

    torch.manual_seed(0)
    original = factory().eval()
    for m in original.modules():            # BatchNorm statistics that are not the defaults
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    graph = load_graph(original, **kw)
    source = emit_torch(graph)
    ast.parse(source)
    weights = read_weights(original, graph)
    rebuilt = build_torch(graph, weights).eval()
    back = load_graph(rebuilt, **kw)
    # module names are kept; a function's node name depends on the module it is called in
    assert facts(back, names=False) == facts(graph, names=False)
    modules = [n.name for n in graph if n.source_type.startswith("torch.nn.")]
    assert modules == [n.name for n in back if n.source_type.startswith("torch.nn.")]
    x = kw["example_inputs"][0] if "example_inputs" in kw else torch.randn(*kw["input_shape"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), original(x), atol=1e-5, rtol=1e-5)


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_torch_weights_from_state_dict_file(tmp_path, one_thread):
    """A state_dict saved to disk is read with weights_only=True and lands on its modules."""
    import torch

    from modellint.emit import build_torch
    from modellint.weights import read_weights

    name, factory, kw = TORCH_CASES[1]
    torch.manual_seed(1)
    original = factory().eval()
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)
    graph = load_graph(original, **kw)
    weights = read_weights(path, graph)
    assert set(weights["layer1.0.conv1"]) == {"weight"}
    assert set(weights["layer1.0.bn1"]) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    rebuilt = build_torch(graph, weights).eval()
    x = torch.randn(*kw["input_shape"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), original(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------
# hostile names, errors
# ---------------------------------------------------------------------------

HOSTILE = 'x"); import os; os.system("touch PWNED"); ("'


def _renamed(graph: Graph, old: str, new: str) -> Graph:
    g = copy.deepcopy(graph)
    nodes = {}
    for n in g:
        if n.name == old:
            n.name = new
        n.inputs = [new if r == old else r for r in n.inputs]
        if n.fused_into == old:
            n.fused_into = new
        nodes[n.name] = n
    g.nodes = nodes
    g.inputs = [new if r == old else r for r in g.inputs]
    g.outputs = [new if r == old else r for r in g.outputs]
    return g


def _only_data(source: str, hostile: str) -> None:
    """The hostile text appears only inside string constants, and the code imports and
    calls nothing a model does not need."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id != "os"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            assert set(mods) <= {"keras", "layers", "torch", "nn", "torch.nn.functional"}, mods
    code_only = "".join(line.split("#")[0] for line in source.splitlines() if not line.lstrip().startswith("#"))
    assert "os.system" not in "".join(
        seg for i, seg in enumerate(code_only.split("'")) if i % 2 == 0), "hostile text outside a string literal"


def test_hostile_names_keras_source():
    graph = load_graph(EXAMPLES / "seed_cnn.h5")
    for old in ("conv2d_2", "dense_1", "input_1"):
        graph = _renamed(graph, old, HOSTILE + old)
    graph.name = HOSTILE
    graph.training.metrics = [HOSTILE]
    source = emit_keras(graph)
    _only_data(source, HOSTILE)
    assert HOSTILE not in source.split('"""')[1]           # the docstring is sanitised too


@pytest.mark.keras
@keras_only
def test_hostile_names_keras_build(tmp_path, monkeypatch):
    from modellint.emit import build_keras

    monkeypatch.chdir(tmp_path)
    graph = _renamed(load_graph(EXAMPLES / "seed_cnn.h5"), "conv2d_2", HOSTILE)
    model = build_keras(graph)
    assert not (tmp_path / "PWNED").exists()
    assert model.get_layer(HOSTILE) is not None           # the name kept, as data


@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
@pytest.mark.torch
def test_hostile_names_torch(tmp_path, monkeypatch, one_thread):
    from modellint.emit import build_torch

    name, factory, kw = TORCH_CASES[1]
    graph = load_graph(factory(), **kw)
    graph = _renamed(_renamed(graph, "fc", HOSTILE), "layer1.0.conv1", "layer1.0." + HOSTILE)
    source = emit_torch(graph)
    _only_data(source, HOSTILE)
    monkeypatch.chdir(tmp_path)
    build_torch(graph)
    assert not (tmp_path / "PWNED").exists()


def test_unknown_op_is_an_emit_error():
    graph = load_graph(EXAMPLES / "seed_cnn.h5")
    graph.nodes["conv2d_3"].op = "unknown"
    with pytest.raises(EmitError, match=r"'conv2d_3' \(op unknown, Conv2D\)"):
        emit_keras(graph)
    with pytest.raises(EmitError, match=r"'conv2d_3' \(op unknown"):
        emit_torch(graph)


def test_emit_error_on_unwritable_attrs():
    g = Graph(name="m", framework="keras")
    g.add(Node(name="in", op="input", output_shapes=[(None, 4)]))
    g.add(Node(name="odd", op="activation", attrs={"function": "no_such_fn"}, inputs=["in"],
               output_shapes=[(None, 4)]))
    g.inputs, g.outputs = ["in"], ["odd"]
    with pytest.raises(EmitError, match="'odd'.*no_such_fn"):
        emit_keras(g)
    g.nodes["odd"].attrs = {"function": "relu", "evil": object()}
    g.nodes["odd"].op = "reshape"
    g.nodes["odd"].attrs = {"target_shape": (object(),)}
    with pytest.raises(EmitError, match="not plain data"):
        emit_keras(g)
