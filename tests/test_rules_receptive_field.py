"""Receptive field, cost and the rules that read them: where the grid ends (global
pooling, Flatten → Dense, attention), and "unknown means unknown" (DESIGN.md): across
an ``unknown`` node neither analysis returns a number and no rule fires on one."""

from modellint.analysis import node_costs, receptive_fields, total_macs
from modellint.analysis.receptive_field import aggregations, last_spatial
from modellint.build import Layer, act, augment, conv, dense, flatten, gap, inp, pool, seq
from modellint.engine import run_rules
from modellint.rules import all_rules
from modellint.rules.context import DatasetFacts

RULES = {r.code: r for r in all_rules()}


def _run(graph, *codes, **facts):
    report = run_rules(graph, [RULES[c] for c in codes], DatasetFacts(**facts))
    assert not report.errors, report.errors
    return report.findings


def _with_unknown(*layers, placeholder="true_divide", source_type="TrueDivide"):
    """A chain where the layer named ``placeholder`` (an identity stand-in, so every
    shape stays known, as in a live Keras 3 model) becomes an ``unknown`` node."""
    g = seq(*layers)
    node = g[placeholder]
    node.op, node.source_type, node.attrs = "unknown", source_type, {}
    return g


def _transfer_like():
    """ks-transfer-mobilenetv2 in small: augmentation, a Keras 3 operation layer the
    adapter cannot read (TrueDivide), then a conv stack with a small field and GAP."""
    return _with_unknown(inp(128, 128, 3), augment("flip"), augment("rotation"), act("linear", name="true_divide"),
                         conv(32, act="relu"), pool(2), conv(64, act="relu"), gap(), dense(13, act="softmax"))


def test_unknown_node_makes_the_field_downstream_unknown():
    g = _transfer_like()
    rfs = receptive_fields(g)
    assert rfs["aug_2"].size == (1, 1)  # before it: known
    for name in ("true_divide", "conv_1", "pool_1", "conv_2", "gap_1", "dense_1"):
        assert rfs[name] is None and rfs.is_unknown(name), name  # not "pointwise"
    assert not rfs.is_unknown("aug_2")
    assert last_spatial(g, rfs) == (None, None)  # not aug_2's 1×1
    assert {a.kind for a in aggregations(g, rfs)} == {"unknown"}


def test_unknown_node_makes_cost_unknown_not_zero():
    g = _transfer_like()
    costs = node_costs(g)
    assert not costs["true_divide"].macs_known and costs["true_divide"].known_macs is None
    assert costs["conv_1"].macs_known and costs["conv_1"].macs > 0  # its own shapes are known facts
    assert total_macs(g) is None
    # shape inference stops past an unknown layer (a .h5 file): a conv after it has no number either
    g2 = seq(inp(32, 32, 3), Layer("unknown", {}, "custom", "MyLayer"), conv(8), gap(), dense(10))
    c2 = node_costs(g2)
    assert not c2["conv_1"].macs_known and not c2["dense_1"].macs_known
    assert c2["gap_1"].macs_known  # pooling never has MACs
    assert total_macs(g2) is None
    # without unknown nodes nothing changes
    g3 = seq(inp(32, 32, 3), conv(8), gap(), dense(10))
    assert total_macs(g3) == sum(c.macs for c in node_costs(g3).values()) > 0


def test_no_rule_fires_on_a_field_or_cost_through_an_unknown_node():
    g = _transfer_like()
    assert not _run(g, "ML401", "ML405", "ML952")
    # the same model without the unknown node: the small field at GAP is flagged
    known = seq(inp(128, 128, 3), augment("flip"), augment("rotation"), conv(32, act="relu"), pool(2),
                conv(64, act="relu"), gap(), dense(13, act="softmax"))
    assert [f.code for f in _run(known, "ML401")] == ["ML401"]


def test_unknown_stem_is_not_judged():
    g = _with_unknown(inp(32, 32, 3), act("linear", name="custom_stem"), conv(64, act="relu"),
                      conv(64, act="relu"), gap(), dense(10, act="softmax"), placeholder="custom_stem",
                      source_type="MyStem")
    assert not _run(g, "ML405")


def test_flatten_dense_sees_the_whole_input():
    # keras.io "Simple MNIST convnet": the Dense weighs every position of the 5×5 map
    g = seq(inp(28, 28, 1), conv(32, kernel=3, padding="valid", act="relu"), pool(2),
            conv(64, kernel=3, padding="valid", act="relu"), pool(2), flatten(), dense(10, act="softmax"))
    (agg,) = aggregations(g)
    assert agg.kind == "dense" and agg.whole_input and agg.rf.size == (10, 10)
    assert not _run(g, "ML401")


def test_gap_after_a_small_field_warns_and_names_the_pooling():
    g = seq(inp(128, 128, 3), conv(32, act="relu"), pool(2), conv(64, act="relu"), gap(), dense(10, act="softmax"))
    (f,) = _run(g, "ML401")
    assert f.layers == ["conv_2"] and f.evidence["receptive_field"] == [8, 8] and "gap_1" in f.message


def test_squeeze_excitation_pooling_is_not_the_head():
    """A squeeze-and-excitation branch pools globally and multiplies back onto the map:
    the grid goes on, so that pooling is not where the classifier reads the features."""
    from modellint.graph import Node

    g = seq(inp(64, 64, 3), conv(16, act="relu"))
    conv_out = "conv_1.activation"
    se_pool = Node(name="se_pool", op="global_pool", source_type="GlobalAveragePooling2D",
                   attrs={"mode": "avg", "keepdims": True}, inputs=[conv_out], output_shapes=[(None, 1, 1, 16)])
    mul = Node(name="se_mul", op="multiply", source_type="Multiply", inputs=[conv_out, "se_pool"],
               output_shapes=[(None, 64, 64, 16)])
    for n in (se_pool, mul):
        g.add(n)
    g.outputs = ["se_mul"]
    assert aggregations(g) == []


def test_attention_after_patches_sees_the_whole_input():
    from modellint.graph import Node

    g = seq(inp(32, 32, 3), conv(64, kernel=4, strides=4, padding="valid"))
    nodes = [Node(name="tokens", op="reshape", source_type="Reshape", attrs={"target_shape": (64, 64)},
                  inputs=["conv_1"], output_shapes=[(None, 64, 64)]),
             Node(name="attn", op="attention", source_type="MultiHeadAttention", attrs={},
                  inputs=["tokens", "tokens"], output_shapes=[(None, 64, 64)]),
             # the residual sum bypasses the attention on one path: the larger field wins
             Node(name="residual", op="add", source_type="Add", inputs=["tokens", "attn"],
                  output_shapes=[(None, 64, 64)]),
             Node(name="pool", op="global_pool", source_type="GlobalAveragePooling1D", attrs={},
                  inputs=["residual"], output_shapes=[(None, 64)])]
    for n in nodes:
        g.add(n)
    g.outputs = ["pool"]
    (agg,) = aggregations(g)
    assert agg.kind == "attention" and agg.whole_input
    assert not _run(g, "ML401", "ML405")


def test_vgg_head_is_measured_whole_and_mlp_is_not_a_flattened_map():
    vgg = seq(inp(32, 32, 3), conv(32, act="relu"), pool(2), conv(64, act="relu"), pool(2), conv(128, act="relu"),
              pool(2), flatten(), dense(128, act="relu"), dense(512, act="relu"), dense(512, act="relu"),
              dense(10, act="softmax"))
    (f,) = _run(vgg, "ML404")
    assert f.layers == ["flatten_1", "dense_1", "dense_2", "dense_3", "dense_4"]
    assert f.evidence["share"] > 0.5 and f.evidence["first_dense_params"] / vgg.total_params < 0.5
    mlp = seq(inp(28, 28, 1), flatten(), dense(512, act="relu"), dense(512, act="relu"), dense(10))
    assert not _run(mlp, "ML404")


def test_flatten_head_prints_the_sources_own_layout():
    g = seq(inp(64, 64, 3), conv(64, act="relu"), pool(8), flatten(), dense(256, act="relu"), dense(10))
    g.layout = "channels_first"  # shapes stay canonical; only the printing changes
    (f,) = _run(g, "ML404")
    assert f.evidence["flattened_shape"] == [64, 8, 8] and "64×8×8" in f.message


def test_imagenet_stem_on_cifar_is_flagged():
    g = seq(inp(32, 32, 3), conv(64, kernel=7, strides=2, act="relu"), pool(3, strides=2, padding="same"),
            conv(128, act="relu"), conv(128, act="relu"), gap(), dense(10, act="softmax"))
    (f,) = _run(g, "ML405")
    assert f.evidence["stem_stride"] == 4 and f.evidence["map_after_stem"] == [8, 8]
    assert f.layers == ["conv_1", "pool_1", "conv_2"]
    # a 3×3 stride-2 first conv is itself the first 3×3 conv: no stem to blame
    ok = seq(inp(32, 32, 3), conv(32, strides=2, act="relu"), conv(64, strides=2, act="relu"), gap(), dense(10))
    assert not _run(ok, "ML405")


def test_flatten_head_share_is_not_guessed_when_parameters_are_unknown():
    g = seq(inp(32, 32, 3), conv(32, act="relu"), pool(2), flatten(), dense(256, act="relu"), dense(10))
    assert _run(g, "ML404")
    g["conv_1"].notes.append("parameters unknown: input shape unknown")
    assert not _run(g, "ML404")


def test_strided_1x1_inside_resnet_v1_blocks_is_a_note_not_a_warning(tmp_path):
    """Keras' own ResNet50 (v1) downsamples with stride-2 1×1 convolutions in both branches of its 3 downsampling
    blocks: a published design, reported once as info naming the 6 convolutions; a plain strided 1×1 stays a
    warning."""
    import gzip
    import json
    import zipfile

    from modellint.adapters import load_graph
    from modellint.build import example
    from modellint.engine import run_rules
    from modellint.rules import get_rule

    config = json.load(gzip.open("tests/fixtures/keras_apps/ResNet50.json.gz"))["keras_config"]
    path = tmp_path / "resnet50.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    [f] = run_rules(load_graph(path), [get_rule("ML402")]).findings
    assert f.severity == "info" and len(f.layers) == 6
    assert set(f.layers) == {f"conv{i}_block1_{b}_conv" for i in (3, 4, 5) for b in (0, 1)}
    plain = example("seq(inp(32, 32, 3), conv(16, act='relu'), conv(32, kernel=1, strides=2, act='relu'), gap(), "
                    "dense(10, act='softmax'))")
    [g] = run_rules(plain, [get_rule("ML402")]).findings
    assert g.severity == "warning"
