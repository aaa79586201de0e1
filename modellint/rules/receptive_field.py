"""ML4xx: receptive field and spatial layout."""

from __future__ import annotations

from ..analysis.receptive_field import aggregations, receptive_fields
from .base import Fix, Rule, register
from .context import names

#: The receptive field at global pooling should cover at least this share of the input side.
RF_MIN_COVERAGE = 0.5
_WINDOW_OPS = ("conv", "depthwise_conv", "separable_conv", "pool_max", "pool_avg")


def _window(node):
    a = node.attrs
    if node.op in ("pool_max", "pool_avg"):
        return tuple(a["pool_size"]), tuple(a.get("strides") or a["pool_size"]), (1,) * len(a["pool_size"])
    return tuple(a["kernel"]), tuple(a.get("strides", (1,) * len(a["kernel"]))), \
        tuple(a.get("dilation", (1,) * len(a["kernel"])))


@register
class ReceptiveFieldTooSmall(Rule):
    """
    ## What it does
    Computes the receptive field of the last spatial layer before the first
    global aggregation of an image model (the features that aggregation reads),
    and flags it when it covers less than half of the input's side and the
    aggregation is a global pooling.

    Only global pooling counts. A Dense/Linear over a flattened map (the classic
    "conv stack + Flatten + Dense"), an attention layer or a recurrent layer
    combines every position with its own weights: the field after it is the whole
    input, and nothing is flagged. Neither is a model whose grid passes through a
    layer modellint does not know (an `unknown` node, e.g. a custom layer or an
    operation the adapter cannot read): its field is not a number, and the rule
    skips rather than guess.

    ## Why is this bad
    Each feature the classifier reads is computed from a window of that size. A
    pattern larger than the window is never seen whole: global pooling only
    averages local evidence. For 13 object classes on 128 px images, a 38 px
    window sees parts, not objects.

    ## Fix
    Add downsampling stages (each conv+pool stage roughly doubles the field),
    use larger strides early, or dilated convolutions in the last stage.
    """

    code = "ML401"
    impact = 3
    name = "receptive-field-too-small"
    category = "receptive-field"
    severity = "warning"
    references = ("Araujo, Norris, Sim 2019, Computing Receptive Fields of Convolutional Neural Networks "
                  "(Distill)", "Luo et al. 2016, Understanding the Effective Receptive Field (NeurIPS)")
    INVALID = ["seq(inp(128, 128, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), "
               "dense(10, act='softmax'))"]
    fix = Fix("Add pool + conv-BN-ReLU stages before the global pooling until the receptive field covers the input",
              "unsafe", "re-initialised", lambda fx: _add_stages(fx))
    VALID = ["seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), pool(2), "
             "conv(64, act='relu'), gap(), dense(10, act='softmax'))",
             "seq(inp(28, 28, 1), conv(32, act='relu'), pool(2), conv(64, act='relu'), pool(2), flatten(), "
             "dropout(0.5), dense(10, act='softmax'))  # Flatten → Dense sees every position"]

    def check(self, ctx):
        img = ctx.input_image()
        if img is None or not all(img[:2]):
            return
        pooled = [a for a in aggregations(ctx.graph, ctx.rf) if a.kind == "global_pool" and a.rf is not None
                  and len(a.rf.size) == 2]
        if not pooled:
            return  # no global pooling, or only through unknown layers: nothing to say
        agg = min(pooled, key=lambda a: min(a.rf.size[i] / img[i] for i in range(2)))
        node, rf = agg.node, agg.rf
        coverage = min(rf.size[i] / img[i] for i in range(2))
        if coverage >= RF_MIN_COVERAGE:
            return
        pooled_by = agg.by.name
        growth = []
        for n in ctx.graph:
            r = ctx.rf.get(n.name)
            if r is not None and n.op in _WINDOW_OPS and (not growth or growth[-1] != r.size[0]):
                growth.append(int(r.size[0]) if float(r.size[0]).is_integer() else r.size[0])
        layer = ctx.layer_of(node).name
        size = "×".join(str(int(s)) for s in rf.size)
        yield self.finding(
            f"{layer}: receptive field {size} px is {coverage:.0%} of the {img[0]}×{img[1]} input at {pooled_by}",
            layers=[layer],
            evidence={"receptive_field": [int(s) for s in rf.size], "effective_stride": [int(s) for s in rf.stride],
                      "input": list(img[:2]), "coverage": round(coverage, 3), "growth": growth},
            explanation=f"Each feature reaching the classifier sees at most a {size} window "
                        f"(RF {' → '.join(map(str, growth))}, effective stride {int(rf.stride[0])}); "
                        f"{pooled_by} only averages them, so larger shapes are never seen whole.",
            fix="Add a conv+pool stage (each roughly doubles the receptive field), or use dilated convs in "
                "the last stage.",
            snippets={"keras": 'x = Conv2D(128, 3, padding="same", use_bias=False)(x)\n'
                               'x = BatchNormalization()(x)\nx = Activation("relu")(x)\nx = MaxPooling2D()(x)',
                      "torch": "nn.Sequential(nn.Conv2d(c, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), "
                               "nn.ReLU(), nn.MaxPool2d(2))"})


#: Stages the fix adds at most, and the smallest grid a stage may pool to.
MAX_NEW_STAGES, MIN_GRID = 4, 2


def _add_stages(fx):
    """Before each global pooling whose features see too little: MaxPool(2) → Conv(3×3, no bias)
    → BatchNorm → ReLU, as the model's widest conv, until the field covers the whole input
    (each stage about doubles it) or the grid would drop below 2×2."""
    done = []
    img = fx.ctx.input_image()
    if img is None:
        return done
    for agg in [a for a in aggregations(fx.graph, fx.ctx.rf) if a.kind == "global_pool"]:
        pool = agg.by
        if pool.name not in fx.graph.nodes or not pool.inputs:
            continue
        width = max((n.attrs.get("filters") or 0 for n in fx.graph if n.op in ("conv", "separable_conv")),
                    default=0) or (fx.graph.shape_of(pool.inputs[0]) or (0,))[-1]
        added = 0
        while added < MAX_NEW_STAGES:
            src = pool.inputs[0]
            shape = fx.graph.shape_of(src)
            rfs = receptive_fields(fx.graph)
            rf = rfs.get(src.split(":")[0])
            if shape is None or rf is None or len(shape) != 4 or len(rf.size) != 2:
                break
            if all(rf.size[i] >= img[i] for i in range(2)) or min(shape[1:3]) // 2 < MIN_GRID:
                break
            added += 1
            stage = f"stage{added}_fix" if f"stage{added}_fix_conv" not in fx.graph.nodes else f"{pool.name}_s{added}"
            names_ = []
            for node in (fx.max_pool(f"{stage}_pool"), fx.conv(f"{stage}_conv", width, 3),
                         fx.batchnorm(f"{stage}_bn"), fx.activation(f"{stage}_relu", "relu")):
                names_.append(fx.editor.insert_before(pool.name, node))
            new_rf = receptive_fields(fx.graph).get(names_[-1])
            size = "×".join(str(int(x)) for x in new_rf.size) if new_rf else "?"
            done.append(f"{' → '.join(names_)}: a stage of {width} channels; receptive field "
                        f"{'×'.join(str(int(x)) for x in rf.size)} → {size} px")
    return done


@register
class CoverageGaps(Rule):
    """
    ## What it does
    Flags convolutions and pooling layers whose stride is larger than their
    (dilated) window, which skips input positions entirely, and consecutive
    convolutions with the same dilation rate > 1 ("gridding").

    ## Why is this bad
    A 1×1 convolution with stride 2 reads only one pixel in four: three
    quarters of the activations never influence the output (ResNet-D fixes
    exactly this in ResNet's downsampling). A subsampling shortcut is not
    flagged when a sibling branch from the same input reads every position, and
    inside a block whose branches merge (ResNet v1, NASNet) it is an `info`: a
    published trade-off, not a bug. Stacked equal dilations sample a checkerboard
    of the input and miss the pixels in between.

    ## Fix
    Make the kernel at least as large as the stride (3×3 stride 2), or
    average-pool before a stride-1 1×1 conv; vary dilation rates (1, 2, 3).
    """

    code = "ML402"
    name = "coverage-gaps"
    category = "receptive-field"
    severity = "warning"
    references = ("He et al. 2019, Bag of Tricks for Image Classification (CVPR), ResNet-D",
                  "Wang et al. 2018, Understanding Convolution for Semantic Segmentation (WACV), HDC")
    INVALID = ["seq(inp(32, 32, 3), conv(16, kernel=1, strides=2, act='relu'), gap(), dense(10, act='softmax'))",
               "seq(inp(64, 64, 3), conv(16, dilation=2, act='relu'), conv(16, dilation=2, act='relu'), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16, kernel=3, strides=2, act='relu'), gap(), dense(10, act='softmax'))",
             "seq(inp(64, 64, 3), conv(16, dilation=1, act='relu'), conv(16, dilation=2, act='relu'), gap(), "
             "dense(10, act='softmax'))"]

    def check(self, ctx):
        for node in ctx.graph:
            if node.op not in _WINDOW_OPS or node.attrs.get("time_distributed"):
                continue
            try:
                k, s, d = _window(node)
            except (KeyError, TypeError):
                continue
            span = [(ki - 1) * di + 1 for ki, di in zip(k, d)]
            if any(si > sp for si, sp in zip(s, span)) and not _covered_by_sibling(ctx, node):
                skipped = 1 - 1
                for si, sp in zip(s, span):
                    skipped = 1 - (1 - skipped) * min(sp, si) / si
                block = _in_block(ctx, node)
                yield self.finding(
                    f"{node.name}: stride {'×'.join(map(str, s))} is larger than its "
                    f"{'×'.join(map(str, span))} window; {skipped:.0%} of input positions are never read"
                    + (f" (a downsampling block, merged at {block})" if block else ""),
                    layers=[node.name], evidence={"kernel": list(k), "strides": list(s), "dilation": list(d),
                                                  "skipped_fraction": round(skipped, 3),
                                                  **({"merged_at": block} if block else {})},
                    severity="info" if block else None,
                    explanation="Positions between the windows never influence the output."
                                + (" Inside a block whose branches merge this is a published design (ResNet v1's "
                                   "strided 1×1 convolutions, NASNet's strided 1×1 pooling): it costs accuracy "
                                   "(ResNet-D moves the stride to the 3×3 convolution or to an average pooling "
                                   "on the shortcut) but is not a bug." if block else ""),
                    fix="Use a kernel at least as large as the stride, or AveragePooling before a stride-1 conv.")
        # gridding: two consecutive convs with the same dilation > 1. The walks back from the dilated
        # convs share one pass per dilation rate: a walk from each along the adds of many residual
        # blocks was quadratic (issue 10). Pairs come out in graph order of the earlier conv.
        convs = ("conv", "depthwise_conv", "separable_conv")
        dilated = [n for n in ctx.graph if n.op in convs and max(tuple(n.attrs.get("dilation", (1,)))) > 1]
        before = {}  # dilation -> (node -> names of the convs of that dilation it reads with no layer between)
        order = {n.name: i for i, n in enumerate(ctx.graph)} if dilated else {}
        for node in dilated:
            d = tuple(node.attrs.get("dilation", (1,)))
            if d not in before:
                before[d] = ctx.backward_reach(
                    through=lambda n: not ctx.is_learnable(n),
                    keep=lambda n, d=d: n.op in convs and tuple(n.attrs.get("dilation", (1,))) == d)
            for name in sorted(before[d](node), key=order.__getitem__):
                prev = ctx.graph[name]
                yield self.finding(f"{prev.name}, {node.name}: consecutive convolutions with the same "
                                   f"dilation {d[0]} sample a grid (gridding)",
                                   layers=[prev.name, node.name], evidence={"dilation": list(d)},
                                   explanation="Stacked equal dilation rates only ever combine inputs on a "
                                               "sparse grid.",
                                   fix="Use dilation rates without a common factor, e.g. 1, 2, 3.")


def _skips(node) -> bool:
    k, s, d = _window(node)
    return any(si > (ki - 1) * di + 1 for ki, si, di in zip(k, s, d))


def _covered_by_sibling(ctx, node) -> bool:
    """True when another branch from the same input reads every position (a ResNetV2
    or Xception shortcut subsamples, while the main path's 3×3 window covers all)."""
    for producer in ctx.producers(node):
        for sibling in ctx.consumers(producer):
            if sibling.name == node.name:
                continue
            first = [sibling] if sibling.op in _WINDOW_OPS else list(
                ctx.forward(sibling, through=lambda n: n.op not in _WINDOW_OPS and not ctx.is_learnable(n)
                            or (ctx.is_learnable(n) and n.op not in _WINDOW_OPS)))
            if any(w.op in _WINDOW_OPS and not _skips(w) for w in first):
                return True
    return False


@register
class FeatureMapCollapse(Rule):
    """
    ## What it does
    Flags a convolution or pooling window larger than the feature map it slides
    over, and feature maps that have shrunk to 1×1 while further spatial layers
    (convolutions, pooling) still follow.

    ## Why is this bad
    Once the map is 1×1 a 3×3 convolution sees mostly padding and pooling does
    nothing: those layers are wasted compute, and the downsampling happened
    too early for the input size.

    ## Fix
    Remove a downsampling step, or feed larger inputs.
    """

    code = "ML403"
    name = "feature-map-collapse"
    category = "receptive-field"
    severity = "warning"
    INVALID = ["seq(inp(8, 8, 3), conv(16, act='relu'), pool(2), pool(2), pool(2), conv(32, act='relu'), "
               "conv(32, act='relu'), gap(), dense(10, act='softmax'))",
               "seq(inp(16, 16, 3), conv(16, act='relu'), pool(4), conv(32, kernel=5, act='relu'), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16, act='relu'), pool(2), conv(32, act='relu'), pool(2), gap(), "
             "dense(10, act='softmax'))"]

    def check(self, ctx):
        for node in ctx.graph:  # a window larger than the map it slides over
            if node.op not in _WINDOW_OPS or not node.inputs:
                continue
            src = ctx.graph.shape_of(node.inputs[0])
            span = [(k - 1) * d + 1 for k, d in zip(_window(node)[0], _window(node)[2])]
            if src is None or len(src) != 4 or not all(src[1:3]) or src[1:3] == (1, 1):
                continue
            if any(sz < sp for sz, sp in zip(src[1:3], span)):
                yield self.finding(f"{node.name}: {'×'.join(map(str, span))} window on a "
                                   f"{src[1]}×{src[2]} feature map", layers=[node.name],
                                   evidence={"window": span, "feature_map": list(src[1:3])},
                                   explanation="Most of the window covers padding, not features.",
                                   fix="Use a smaller window here, downsample less, or feed larger inputs.")
        for node in ctx.graph:
            if not _is_1x1(node) or node.fused_into:
                continue
            if any(_is_1x1(p) for p in ctx.producers(node)):
                continue  # report the first layer that reaches 1×1 only
            # spatial layers that still work on this 1×1 map (a squeeze-and-excitation
            # branch returns to the full map through a multiply and is left alone)
            wasteful = [n for n in _reached_1x1(ctx, node) if n.op in _WINDOW_OPS and max(_window(n)[0]) > 1]
            if wasteful:
                shape = node.output_shape
                yield self.finding(f"{node.name}: feature map is 1×1 but {len(wasteful)} spatial layers follow "
                                   f"({wasteful[0].name} …)", layers=[node.name, *[n.name for n in wasteful]],
                                   evidence={"shape": list(shape[1:]), "spatial_layers_after": len(wasteful)},
                                   explanation="Windows larger than 1×1 on a 1×1 map see only padding.",
                                   fix="Downsample less, or use larger inputs.")


def _is_1x1(node) -> bool:
    shape = node.output_shape
    return shape is not None and len(shape) == 4 and shape[1:3] == (1, 1)


def _reached_1x1(ctx, node) -> list:
    out, seen, stack = [], set(), list(ctx.consumers(node))
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        in_shape = ctx.graph.shape_of(n.inputs[0]) if n.inputs else None
        if in_shape is None or len(in_shape) != 4 or in_shape[1:3] != (1, 1):
            continue
        out.append(n)
        if _is_1x1(n):
            stack.extend(ctx.consumers(n))
    return out


@register
class FlattenDenseDominates(Rule):
    """
    ## What it does
    Flags a Flatten of a convolutional feature map whose dense head (every Dense
    layer after the Flatten, up to the output) holds most (over half) of the
    model's parameters. The whole head counts: a VGG-style
    `Flatten → Dense(4096) → Dense(4096)` spreads its weight over several layers,
    none of them alone over half.

    A Flatten of the input image itself is an MLP, not a flattened feature map, and
    is not flagged; neither is a Flatten of a 1×1 map (global pooling's output),
    nor a model with a layer whose parameters cannot be counted (the share would
    be a guess).

    ## Why is this bad
    The dense layer learns a separate weight for every position of every
    channel: parameters scale with image area, the model overfits small
    datasets, and translation invariance is lost. Global average pooling does
    the same job with zero parameters.

    ## Fix
    Replace `Flatten()` with `GlobalAveragePooling2D()` (`nn.AdaptiveAvgPool2d(1)` +
    `flatten`), or reduce the map further before flattening.
    """

    code = "ML404"
    name = "flatten-dense-dominates"
    category = "architecture"
    severity = "warning"
    references = ("Lin, Chen, Yan 2014, Network In Network (ICLR), global average pooling",)
    INVALID = ["seq(inp(64, 64, 3), conv(32, act='relu'), pool(2), flatten(), dense(128, act='relu'), "
               "dense(10, act='softmax'))",
               "seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), pool(2), "
               "conv(128, act='relu'), pool(2), flatten(), dense(128, act='relu'), dense(512, act='relu'), "
               "dense(512, act='relu'), dense(10, act='softmax'))  # VGG-style head, no Dense alone over half"]
    # Pooled features make the receptive field matter (ML401), and without the big Dense another layer
    # may hold most of the compute (ML952): both were hidden by the flattened head.
    fix = Fix("Replace the Flatten by global average pooling", "unsafe", "re-initialised",
              lambda fx: _flatten_to_gap(fx), may_reveal=("ML401", "ML952"))
    VALID = ["seq(inp(64, 64, 3), conv(32, act='relu'), pool(2), gap(), dense(128, act='relu'), "
             "dense(10, act='softmax'))",
             "seq(inp(28, 28, 1), flatten(), dense(512, act='relu'), dense(512, act='relu'), "
             "dense(10, act='softmax'))  # an MLP flattens the image itself"]

    def check(self, ctx):
        if any(x.startswith("parameters unknown") for n in ctx.graph for x in n.notes):
            return  # a layer whose parameters cannot be counted: the share would be a guess
        total = ctx.graph.total_params or 1
        for node in ctx.graph:
            if node.op != "flatten" or not node.inputs:
                continue
            src = ctx.graph.shape_of(node.inputs[0])
            if src is None or len(src) < 4 or not all(src[1:-1]) or _positions(src) <= 1:
                continue
            if not any(n.op in _CONV_OPS for n in ctx.backward(node, through=lambda n: n.op not in _CONV_OPS)):
                continue  # the input image itself (maybe rescaled): an MLP, not a feature map
            head = _dense_head(ctx, node)
            params = sum(d.params for d in head)
            if not head or params / total <= 0.5:
                continue
            shown = ctx.graph.display_shape(src)
            where = names(head)
            yield self.finding(
                f"{where}: {params:,} parameters ({params / total:.0%} of the model) read a flattened "
                f"{'×'.join(map(str, shown[1:]))} map", layers=[node.name, *[d.name for d in head]],
                evidence={"dense_params": params, "share": round(params / total, 3),
                          "flattened_shape": list(shown[1:]), "dense_layers": {d.name: d.params for d in head},
                          "first_dense_params": head[0].params},
                explanation="A weight per position per channel: parameters grow with image area and "
                            "translation invariance is lost.",
                fix=ctx.say("Replace Flatten with GlobalAveragePooling2D.",
                            "Replace the flatten with global average pooling: nn.AdaptiveAvgPool2d(1), then "
                            "nn.Flatten()."),
                snippets={"keras": "x = GlobalAveragePooling2D()(x)",
                          "torch": "x = torch.flatten(nn.AdaptiveAvgPool2d(1)(x), 1)"})


_CONV_OPS = ("conv", "depthwise_conv", "separable_conv", "conv_transpose")


def _flatten_to_gap(fx):
    done = []
    for name in fx.finding.layers:
        node = fx.graph.nodes.get(name)
        if node is None or node.op != "flatten":
            continue
        src = fx.graph.shape_of(node.inputs[0])
        new = fx.editor.replace(name, fx.global_avg_pool("global_average_pooling", len(src) - 2))
        done.append(f"{name} (Flatten of {'×'.join(map(str, src[1:]))}) → {new} (global average pooling: "
                    f"{src[-1]} features)")
    return done


def _positions(shape) -> int:
    n = 1
    for d in shape[1:-1]:
        n *= d
    return n


def _dense_head(ctx, flatten) -> list:
    """The Dense layers after ``flatten`` up to the output, through what has no weights."""
    head, seen, stack = [], set(), list(ctx.consumers(flatten))
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        if n.op == "dense":
            if not n.shares_params_with:
                head.append(n)
        elif ctx.is_learnable(n) or n.op == "unknown":
            continue  # another kind of layer: the head ends here
        stack.extend(ctx.consumers(n))
    order = {name: i for i, name in enumerate(ctx.graph.nodes)}
    return sorted(head, key=lambda n: order[n.name])


@register
class AggressiveStem(Rule):
    """
    ## What it does
    Flags a small input (64 px or less on a side) that the stem downsamples by 4×
    or more before the first 3×3 convolution, or to less than 8×8 positions, and
    one downsampled by 8× or more within its first two spatial layers. The stem is
    every convolution and pooling layer before the first convolution with a 2×2
    or 3×3 kernel. A model with no such convolution (a ViT's patch embedding, a
    LeNet of 5×5 convolutions) has no stem in this sense and is left alone; so is
    a stem that passes through a layer modellint does not know.

    ## Why is this bad
    An ImageNet stem (7×7 stride 2 then 3×3 max-pool stride 2) on a 32×32
    image leaves an 8×8 map before any feature is learned: fine detail is
    thrown away at once, 15 of every 16 positions before the first 3×3 filter
    looks at them. CIFAR-style networks use a 3×3 stride-1 stem.

    ## Fix
    Use a 3×3 stride-1 first convolution and no early pooling for small inputs.
    """

    code = "ML405"
    name = "aggressive-stem"
    category = "receptive-field"
    severity = "warning"
    references = ("He et al. 2016, Deep Residual Learning, sec. 4.2 (CIFAR-10 stem)",)
    INVALID = ["seq(inp(32, 32, 3), conv(64, kernel=7, strides=2, act='relu'), pool(3, strides=4), "
               "conv(64, act='relu'), gap(), dense(10, act='softmax'))",
               "seq(inp(32, 32, 3), conv(64, kernel=7, strides=2, act='relu'), pool(3, strides=2), "
               "conv(128, act='relu'), conv(128, act='relu'), gap(), dense(10, act='softmax'))  "
               "# the ImageNet stem on CIFAR"]
    VALID = ["seq(inp(32, 32, 3), conv(64, act='relu'), conv(64, act='relu'), pool(2), gap(), "
             "dense(10, act='softmax'))",
             "seq(inp(224, 224, 3), conv(64, kernel=7, strides=2, act='relu'), pool(3, strides=2), "
             "conv(64, act='relu'), gap(), dense(10, act='softmax'))",
             "seq(inp(32, 32, 3), conv(32, kernel=5, act='relu'), pool(2), conv(64, kernel=5, act='relu'), "
             "pool(2), flatten(), dense(10, act='softmax'))  # LeNet: no 3×3 conv, no stem"]

    def check(self, ctx):
        img = ctx.input_image()
        if img is None or not img[0] or not img[1] or min(img[:2]) > 64:
            return
        spatial = [n for n in ctx.graph if n.op in _WINDOW_OPS]
        stem, first3 = [], None
        for n in spatial:
            try:
                k = _window(n)[0] if n.op not in ("pool_max", "pool_avg") else None
            except (KeyError, TypeError):
                return
            if n.op in ("conv", "depthwise_conv", "separable_conv") and k and 1 < max(k) <= 3:
                first3 = n
                break
            stem.append(n)
        if first3 is not None and stem:
            src = ctx.producers(first3)
            rf = ctx.rf.get(src[0].name) if src else None
            shape = ctx.graph.shape_of(first3.inputs[0]) if first3.inputs else None
            if rf is None or ctx.rf.is_unknown(src[0].name):
                return  # an unknown layer in the stem: its downsampling cannot be known
            stride = max(rf.stride)
            small_map = shape is not None and len(shape) == 4 and all(shape[1:3]) and min(shape[1:3]) < 8
            if stride >= 4 or small_map:
                layers = [n.name for n in stem]
                yield self.finding(
                    f"{names(stem)}: the {img[0]}×{img[1]} input is downsampled {_num(stride)}× "
                    f"(to {_map(shape)}) before the first 3×3 convolution {first3.name}",
                    layers=layers + [first3.name],
                    evidence={"input": list(img[:2]), "stem_stride": _num(stride), "stem_layers": layers,
                              "map_after_stem": list(shape[1:3]) if shape else None,
                              "threshold_stride": 4, "threshold_map": 8},
                    explanation=f"The stem keeps one position in {_num(stride) ** 2} before the first 3×3 filter: "
                                "fine detail of a small image is discarded before any feature is learned.",
                    fix="Use a 3×3 stride-1 stem without early pooling for small inputs.",
                    snippets={"keras": 'x = Conv2D(64, 3, padding="same", use_bias=False)(inputs)  # no MaxPooling',
                              "torch": "model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); "
                                       "model.maxpool = nn.Identity()"})
                return
        if len(spatial) < 2 or any(ctx.rf.get(n.name) is None for n in spatial[:2]):
            return  # fewer than two spatial layers, or an unknown layer among them
        first, second = spatial[:2]
        stride = ctx.rf[second.name].stride[0]
        if stride >= 8:
            shape = second.output_shape
            yield self.finding(
                f"{first.name}, {second.name}: the {img[0]}×{img[1]} input is downsampled {int(stride)}× "
                f"in the first two spatial layers", layers=[first.name, second.name],
                evidence={"input": list(img[:2]), "stride_after_two_layers": int(stride),
                          "map_after": list(shape[1:3]) if shape else None},
                explanation="Fine detail of a small image is discarded before any feature is learned.",
                fix="Use a 3×3 stride-1 stem without early pooling for small inputs.")


def _num(x):
    return int(x) if float(x).is_integer() else round(float(x), 2)


def _map(shape) -> str:
    if shape is None or len(shape) != 4 or not all(shape[1:3]):
        return "an unknown size"
    return f"{shape[1]}×{shape[2]}"


def _in_block(ctx, node, depth: int = 8):
    """The merge (add / concatenation) a strided node's branch reaches within ``depth``
    nodes, when it does: it sits inside a multi-branch downsampling block."""
    frontier, seen = [node], {node.name}
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for c in ctx.consumers(n):
                if c.op in ("add", "concat") and len(c.inputs) > 1:
                    return c.name
                if c.name not in seen:
                    seen.add(c.name)
                    nxt.append(c)
        frontier = nxt
    return None


# Ops that carry no information about where a token sits: the walk from an attention layer
# back to its tokens passes through them.
_POSITION_BLIND = ("dropout", "layernorm", "identity", "reshape", "permute", "batchnorm", "activation", "scale",
                   "rescaling", "normalization", "dense")


@register
class MissingPositionalEncoding(Rule):
    """
    ## What it does
    Flags self-attention over token embeddings or image patches when nothing on
    the way from the tokens to the first attention layer tells it where each token
    sits: no positional encoding added (a learned `nn.Parameter`, a sinusoidal
    table, a position `Embedding`), no recurrent or convolutional layer that mixes
    neighbours. A path through a layer modellint cannot read (a custom
    `TokenAndPositionEmbedding`) is not flagged.

    ## Why is this bad
    Attention is permutation-equivariant: shuffling the tokens shuffles the
    outputs the same way, and after pooling the model sees a bag of tokens. "dog
    bites man" and "man bites dog" become the same input, and a ViT cannot tell
    the top of an image from the bottom.

    ## Fix
    Add a positional encoding to the embeddings before the encoder:
    `x = self.embed(tokens) + self.pos[:, :seq_len]` with
    `self.pos = nn.Parameter(torch.zeros(1, max_len, dim))` (Keras: add an
    `Embedding(max_len, dim)` of `ops.arange(seq_len)`, or keras_hub's
    `TokenAndPositionEmbedding`).
    """

    code = "ML406"
    name = "missing-positional-encoding"
    category = "architecture"
    severity = "warning"
    references = ("Vaswani et al. 2017, Attention Is All You Need (NeurIPS), section 3.5",
                  "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words (ICLR), appendix D.4")
    INVALID = ["seq(inp(100,), embed(1000, 32), mha(2, 16), gap(), dense(4, act='softmax'))",
               "seq(inp(100,), embed(1000, 32), ln(), dropout(0.1), mha(2, 16), gap(), dense(4, act='softmax'))"]
    VALID = ["seq(inp(100,), embed(1000, 32), posadd(), mha(2, 16), gap(), dense(4, act='softmax'))",
             "seq(inp(100,), embed(1000, 32), rnn(32), mha(2, 16), gap(), dense(4, act='softmax'))"]

    def check(self, ctx):
        attention = [n for n in ctx.graph if n.op == "attention"]
        if not attention:
            return
        first = attention[0]
        source = _token_source(ctx, first)
        if source is None:
            return
        yield self.finding(
            f"{first.name}: self-attention over the tokens of {source.name} with no positional encoding",
            layers=[first.name], evidence={"tokens_from": source.name, "token_op": source.op,
                                           "attention_layers": len(attention)},
            explanation="Attention treats its inputs as a set: without positions the model cannot use word order "
                        "or where a patch lies in the image.",
            fix="Add a learned or sinusoidal positional encoding to the embeddings before the first attention "
                "layer.",
            snippets={"torch": "self.pos = nn.Parameter(torch.zeros(1, max_len, dim))\n"
                               "x = self.embed(tokens) + self.pos[:, : tokens.shape[1]]",
                      "keras": "positions = keras.layers.Embedding(max_len, dim)(keras.ops.arange(seq_len))\n"
                               "x = keras.layers.Embedding(vocab, dim)(tokens) + positions"})


def _token_source(ctx, node):
    """The embedding (or patchifying conv) the attention reads with nothing positional in
    between, or None when something on the way adds or mixes positions (or is unknown)."""
    memo: dict = {}

    def sources(n):
        """Names of the token sources behind ``n``; None: positions are known (or unknowable)."""
        if n.name in memo:
            return memo[n.name]
        memo[n.name] = frozenset()  # a cycle guard; graphs are acyclic
        if n.op == "embedding" or (n.op == "conv" and max(tuple(n.attrs.get("kernel", (1,)))) > 1 and
                                   tuple(n.attrs.get("kernel", ())) == tuple(n.attrs.get("strides", ()))):
            out = frozenset({n.name})  # token ids, or non-overlapping patches (no neighbour mixing)
        elif n.op == "add" and (len(n.inputs) < 2 or n.attrs.get("constant_operand")):
            out = None  # x + a parameter / constant table: a positional encoding
        elif n.op == "add" or n.op in _POSITION_BLIND:
            parts = [sources(p) for p in ctx.producers(n)]
            if any(p is None for p in parts) or not parts:
                out = None
            elif n.op == "add" and len({p for p in parts if p}) > 1:
                out = None  # two different embeddings summed: tokens + positions (or segments)
            else:
                out = frozenset().union(*parts)
        else:
            out = None  # an input, a recurrent or convolutional layer, an unknown layer
        memo[n.name] = out
        return out

    found = [sources(p) for p in ctx.producers(node)]
    if not found or any(f is None for f in found):
        return None
    names = sorted(frozenset().union(*found))
    return ctx.graph[names[0]] if names else None
