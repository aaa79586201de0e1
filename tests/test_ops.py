"""modellint.ops and the receptive field, framework-free, against hand arithmetic."""

import pytest

from modellint import ops
from modellint.analysis import receptive_fields
from modellint.graph import Graph, Node


def test_conv_output_length():
    L = 32
    assert ops.conv_out_len(L, 3, 1, 1, "valid") == L - 3 + 1  # 30
    assert ops.conv_out_len(L, 3, 2, 1, "valid") == (L - 3) // 2 + 1  # 15
    assert ops.conv_out_len(L, 3, 2, 1, "same") == -(-L // 2)  # ceil(32 / 2) = 16
    assert ops.conv_out_len(33, 3, 2, 1, "same") == 17  # ceil(33 / 2)
    eff = (3 - 1) * 2 + 1  # kernel 3 dilated by 2 spans 5
    assert ops.conv_out_len(L, 3, 1, 2, "valid") == L - eff + 1  # 28
    assert ops.conv_out_len(L, 3, 1, 2, "causal") == L
    assert ops.conv_out_len(L, 3, 1, 1, (1, 1)) == L + 1 + 1 - 3 + 1
    assert ops.conv_out_len(None, 3, 1, 1, "valid") is None
    with pytest.raises(ops.ShapeError):
        ops.conv_out_len(4, 3, 1, 2, "valid")  # a window of 5 on 4 positions


def test_transposed_conv_output_length():
    L = 7
    assert ops.deconv_out_len(L, 3, 2, 1, "valid") == (L - 1) * 2 + 3  # 15
    assert ops.deconv_out_len(L, 2, 3, 1, "valid") == L * 3 + max(2 - 3, 0)  # 21: kernel < stride
    assert ops.deconv_out_len(L, 3, 2, 1, "same") == L * 2  # 14
    assert ops.deconv_out_len(L, 3, 2, 1, "valid", output_padding=1) == (L - 1) * 2 + 3 + 1  # 16
    assert ops.deconv_out_len(L, 4, 2, 1, "same", output_padding=1) == (L - 1) * 2 + 4 % 2 + 1  # 13
    assert ops.deconv_out_len(L, 3, 1, 2, "valid") == (L - 1) * 1 + (3 - 1) * 2 + 1  # 11: dilated


def test_conv_shapes_params_macs():
    x = (None, 32, 32, 3)
    a = {"rank": 2, "filters": 16, "kernel": (3, 3), "strides": (1, 1), "padding": "same"}
    (y,) = ops.infer_shapes("conv", a, [x])
    assert y == (None, 32, 32, 16)
    assert ops.count_params("conv", a, [x], [y]) == (3 * 3 * 3 * 16 + 16, 0)
    assert ops.count_macs("conv", a, [x], [y]) == 32 * 32 * 3 * 3 * 3 * 16  # H*W*k*k*Cin*Cout
    g = {"rank": 2, "filters": 12, "kernel": (3, 3), "groups": 4, "use_bias": False}
    x8 = (None, 10, 10, 8)
    (y8,) = ops.infer_shapes("conv", g, [x8])
    assert y8 == (None, 8, 8, 12)
    assert ops.count_params("conv", g, [x8], [y8]) == (3 * 3 * (8 // 4) * 12, 0)
    assert ops.count_macs("conv", g, [x8], [y8]) == 8 * 8 * 3 * 3 * (8 // 4) * 12


def test_separable_and_depthwise_params():
    k, cin, dm, f = 3, 16, 2, 32
    a = {"rank": 2, "kernel": (k, k), "filters": f, "depth_multiplier": dm, "padding": "same"}
    x = (None, 8, 8, cin)
    (y,) = ops.infer_shapes("separable_conv", a, [x])
    assert y == (None, 8, 8, f)
    assert ops.count_params("separable_conv", a, [x], [y]) == (k * k * cin * dm + cin * dm * f + f, 0)
    d = {"rank": 2, "kernel": (k, k), "depth_multiplier": dm}
    (yd,) = ops.infer_shapes("depthwise_conv", d, [x])
    assert yd == (None, 6, 6, cin * dm)
    assert ops.count_params("depthwise_conv", d, [x], [yd]) == (k * k * cin * dm + cin * dm, 0)


def test_rnn_params():
    u, f = 8, 5
    x = (None, 10, f)
    lstm = {"cell": "lstm", "units": u}
    assert ops.count_params("rnn", lstm, [x], []) == (4 * (u * f + u * u + u), 0)
    assert ops.count_params("rnn", {**lstm, "bidirectional": True}, [x], []) == (2 * 4 * (u * f + u * u + u), 0)
    gru = {"cell": "gru", "units": u, "reset_after": True}
    assert ops.count_params("rnn", gru, [x], []) == (3 * (u * f + u * u) + 2 * 3 * u, 0)  # two biases
    assert ops.count_params("rnn", {**gru, "reset_after": False}, [x], []) == (3 * (u * f + u * u + u), 0)
    assert ops.count_params("rnn", {"cell": "simple", "units": u}, [x], []) == (u * f + u * u + u, 0)
    assert ops.count_macs("rnn", lstm, [x], []) == 10 * 4 * (f * u + u * u)


def test_rnn_output_shapes():
    x = (None, 10, 5)
    a = {"cell": "lstm", "units": 4, "return_sequences": True, "return_state": True}
    assert ops.infer_shapes("rnn", a, [x]) == [(None, 10, 4), (None, 4), (None, 4)]
    bi = {**a, "bidirectional": True, "merge_mode": "concat"}
    assert ops.infer_shapes("rnn", bi, [x]) == [(None, 10, 8)] + [(None, 4)] * 4
    none = {"cell": "gru", "units": 4, "bidirectional": True, "merge_mode": None}
    assert ops.infer_shapes("rnn", none, [x]) == [(None, 4), (None, 4)]  # forward, backward


def test_attention_params_and_shapes():
    q, v = (None, 6, 8), (None, 9, 5)
    h, kd = 2, 4
    a = {"num_heads": h, "key_dim": kd}
    # query, key and value projections to h*kd (bias h*kd each), output back to 8
    assert ops.count_params("attention", a, [q], []) == (3 * (8 * h * kd + h * kd) + h * kd * 8 + 8, 0)
    vd = 3
    c = {"num_heads": h, "key_dim": kd, "value_dim": vd, "output_shape": (2, 5), "use_bias": False,
         "return_attention_scores": True}
    assert ops.count_params("attention", c, [q, v], []) == (8 * h * kd + 5 * h * kd + 5 * h * vd + h * vd * 2 * 5, 0)
    assert ops.infer_shapes("attention", c, [q, v]) == [(None, 6, 2, 5), (None, h, 6, 9)]


def test_dense_macs_and_channels_first_frame():
    assert ops.count_macs("dense", {"units": 10}, [(None, 7)], [(None, 10)]) == 7 * 10
    assert ops.count_macs("dense", {"units": 10}, [(None, 3, 7)], [(None, 3, 10)]) == 3 * 7 * 10
    # in a channels_first graph a Dense acts on the last *source* axis: source
    # (None, C=4, H=6, W=8) is stored canonically as (None, 6, 8, 4)
    x = (None, 6, 8, 4)
    (y,) = ops.infer_shapes("dense", {"units": 5}, [x], "channels_first")
    assert y == (None, 6, 5, 4)  # source (None, 4, 6, 5)
    assert ops.count_params("dense", {"units": 5}, [x], [y], "channels_first") == (8 * 5 + 5, 0)
    # TimeDistributed(Conv2D(channels_first)) on source (None, T=2, C=3, 8, 8)
    td = {"rank": 2, "filters": 4, "kernel": (3, 3), "time_distributed": True, "data_format": "channels_first"}
    xt = ops.to_canonical((None, 2, 3, 8, 8), "channels_first")
    (yt,) = ops.infer_shapes("conv", td, [xt], "channels_first")
    assert ops.to_source(yt, "channels_first") == (None, 2, 4, 6, 6)
    assert ops.count_params("conv", td, [xt], [yt], "channels_first") == (3 * 3 * 3 * 4 + 4, 0)
    assert ops.count_macs("conv", td, [xt], [yt], "channels_first") == 2 * 6 * 6 * 3 * 3 * 3 * 4


def test_merge_and_reshape_shapes():
    assert ops.infer_shapes("concat", {"axis": -1}, [(None, 4, 2), (None, 4, 3)]) == [(None, 4, 5)]
    assert ops.infer_shapes("concat", {"axis": 1}, [(None, 4, 2), (None, 3, 2)]) == [(None, 7, 2)]
    assert ops.infer_shapes("add", {}, [(None, 4, 5), (None, 1, 5)]) == [(None, 4, 5)]
    assert ops.infer_shapes("dot", {"axes": (1, 2)}, [(None, 3, 4), (None, 5, 3)]) == [(None, 4, 5)]
    assert ops.infer_shapes("dot", {"axes": 1}, [(None, 5), (None, 5)]) == [(None, 1)]
    assert ops.infer_shapes("reshape", {"target_shape": (-1, 3)}, [(None, 4, 6)]) == [(None, 4 * 6 // 3, 3)]
    assert ops.infer_shapes("global_pool", {"keepdims": True}, [(None, 5, 6, 3)]) == [(None, 1, 1, 3)]
    assert ops.infer_shapes("pool_max", {"pool_size": (3, 2), "strides": (2, 2)}, [(None, 9, 10, 3)]) == \
        [(None, (9 - 3) // 2 + 1, (10 - 2) // 2 + 1, 3)]
    assert ops.count_params("batchnorm", {"axis": -1}, [(None, 5, 5, 3)], []) == (2 * 3, 2 * 3)
    assert ops.count_params("layernorm", {"axis": [-2, -1], "center": False}, [(None, 3, 4, 5)], []) == (4 * 5, 0)


def _chain(layers, input_shape=(None, 64, 64, 3)):
    """A Graph of a chain of (name, op, attrs)."""
    g = Graph(name="chain")
    g.add(Node("x", "input", output_shapes=[input_shape]))
    g.inputs.append("x")
    prev = "x"
    for name, op, attrs in layers:
        shapes = ops.infer_shapes(op, attrs, [g.shape_of(prev)])
        g.add(Node(name, op, attrs=attrs, inputs=[prev], output_shapes=shapes))
        prev = name
    g.outputs = [prev]
    return g


def test_receptive_field_chain_with_dilation():
    conv = lambda k, s=1, d=1: {"rank": 2, "filters": 4, "kernel": (k, k), "strides": (s, s),  # noqa: E731
                                "dilation": (d, d), "padding": "same"}
    g = _chain([
        ("c1", "conv", conv(3)),
        ("c2", "conv", conv(3, s=2)),
        ("c3", "conv", conv(3, d=2)),
        ("p", "pool_max", {"pool_size": (2, 2), "strides": (2, 2)}),
        ("c4", "conv", conv(3)),
        ("gap", "global_pool", {}),
    ])
    rf = receptive_fields(g)
    # r = 1 + sum_l (k_l - 1) * d_l * prod_{i<l} s_i
    r = 1 + (3 - 1) * 1 * 1 + (3 - 1) * 1 * 1 + (3 - 1) * 2 * 2 + (2 - 1) * 1 * 2 + (3 - 1) * 1 * (2 * 2)
    assert r == 23
    assert rf["c4"].size == (r, r) and rf["c4"].stride == (2 * 2, 2 * 2)
    assert rf["c3"].size == (1 + 2 + 2 + 2 * 2 * 2,) * 2
    assert rf["gap"] is None  # no spatial grid left
