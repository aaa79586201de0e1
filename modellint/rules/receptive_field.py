"""ML4xx: receptive field and spatial layout."""

from __future__ import annotations

from ..analysis.receptive_field import last_spatial
from .base import Rule, register

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
    Computes the receptive field of the last spatial layer (before global pooling
    or flatten) and flags it when it covers less than half of the input's side.

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
    VALID = ["seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), pool(2), "
             "conv(64, act='relu'), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        node, rf = last_spatial(ctx.graph, ctx.rf)
        img = ctx.input_image()
        if node is None or img is None or not all(img[:2]):
            return
        coverage = min(rf.size[i] / img[i] for i in range(2))
        if coverage >= RF_MIN_COVERAGE:
            return
        after = [n for n in ctx.consumers(node)]
        pooled_by = after[0].name if after else "the head"
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
                        "larger shapes are never seen whole.",
            fix="Add a conv+pool stage (each roughly doubles the receptive field), or use dilated convs in "
                "the last stage.",
            snippets={"keras": 'x = Conv2D(128, 3, padding="same", use_bias=False)(x)\n'
                               'x = BatchNormalization()(x)\nx = Activation("relu")(x)\nx = MaxPooling2D()(x)',
                      "torch": "nn.Sequential(nn.Conv2d(c, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), "
                               "nn.ReLU(), nn.MaxPool2d(2))"})


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
    flagged when a sibling branch from the same input reads every position. Stacked equal dilations sample a
    checkerboard of the input and miss the pixels in between.

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
                yield self.finding(
                    f"{node.name}: stride {'×'.join(map(str, s))} is larger than its "
                    f"{'×'.join(map(str, span))} window; {skipped:.0%} of input positions are never read",
                    layers=[node.name], evidence={"kernel": list(k), "strides": list(s), "dilation": list(d),
                                                  "skipped_fraction": round(skipped, 3)},
                    explanation="Positions between the windows never influence the output.",
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
    Flags a Flatten of a spatial feature map into a Dense layer that holds most
    (over half) of the model's parameters.

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
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(64, 64, 3), conv(32, act='relu'), pool(2), gap(), dense(128, act='relu'), "
             "dense(10, act='softmax'))"]

    def check(self, ctx):
        total = ctx.graph.total_params or 1
        for node in ctx.graph:
            if node.op != "flatten" or not node.inputs:
                continue
            src = ctx.graph.shape_of(node.inputs[0])
            if src is None or len(src) < 4:
                continue
            for d in ctx.forward(node, through=lambda n: n.op in ("dropout", "identity", "activation")):
                if d.op == "dense" and d.params / total > 0.5:
                    yield self.finding(
                        f"{d.name}: {d.params:,} parameters ({d.params / total:.0%} of the model) read a flattened "
                        f"{'×'.join(map(str, src[1:]))} map", layers=[node.name, d.name],
                        evidence={"dense_params": d.params, "share": round(d.params / total, 3),
                                  "flattened_shape": list(src[1:])},
                        explanation="A weight per position per channel: parameters grow with image area and "
                                    "translation invariance is lost.",
                        fix="Replace Flatten with GlobalAveragePooling2D.",
                        snippets={"keras": "x = GlobalAveragePooling2D()(x)",
                                  "torch": "x = torch.flatten(nn.AdaptiveAvgPool2d(1)(x), 1)"})


@register
class AggressiveStem(Rule):
    """
    ## What it does
    Flags small inputs (64 px or less) downsampled by 8× or more within the
    first two spatial layers.

    ## Why is this bad
    An ImageNet stem (7×7 stride 2 then 3×3 max-pool stride 2) on a 32×32
    image leaves an 8×8 map before any feature is learned: fine detail is
    thrown away at once. CIFAR-style networks use a 3×3 stride-1 stem.

    ## Fix
    Use a 3×3 stride-1 first convolution and no early pooling for small inputs.
    """

    code = "ML405"
    name = "aggressive-stem"
    category = "receptive-field"
    severity = "warning"
    references = ("He et al. 2016, Deep Residual Learning, sec. 4.2 (CIFAR-10 stem)",)
    INVALID = ["seq(inp(32, 32, 3), conv(64, kernel=7, strides=2, act='relu'), pool(3, strides=4), "
               "conv(64, act='relu'), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(64, act='relu'), conv(64, act='relu'), pool(2), gap(), "
             "dense(10, act='softmax'))",
             "seq(inp(224, 224, 3), conv(64, kernel=7, strides=2, act='relu'), pool(3, strides=2), "
             "conv(64, act='relu'), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        img = ctx.input_image()
        if img is None or not img[0] or min(img[:2]) > 64:
            return
        spatial = [n for n in ctx.graph if n.op in _WINDOW_OPS and ctx.rf.get(n.name) is not None]
        if len(spatial) < 2:
            return
        second = spatial[1]
        stride = ctx.rf[second.name].stride[0]
        if stride >= 8:
            shape = second.output_shape
            yield self.finding(
                f"{spatial[0].name}, {second.name}: the {img[0]}×{img[1]} input is downsampled {int(stride)}× "
                f"in the first two spatial layers", layers=[spatial[0].name, second.name],
                evidence={"input": list(img[:2]), "stride_after_two_layers": int(stride),
                          "map_after": list(shape[1:3]) if shape else None},
                explanation="Fine detail of a small image is discarded before any feature is learned.",
                fix="Use a 3×3 stride-1 stem without early pooling for small inputs.")
