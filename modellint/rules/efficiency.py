"""ML95x: efficiency hints."""

from __future__ import annotations

from .base import Rule, register
from .context import names

#: A layer above this share of all MACs is called dominant.
DOMINANT_SHARE = 0.5


@register
class ChannelsNotMultipleOf8(Rule):
    """
    ## What it does
    Notes hidden conv/dense layers whose output width is not a multiple of 8.

    ## Why is this bad
    GPU tensor cores and most accelerators work on tiles of 8 (fp16) or more;
    other widths are padded or fall back to slower kernels. Not a correctness
    problem.

    ## Fix
    Round widths to multiples of 8 (the output layer is exempt).
    """

    code = "ML951"
    impact = 1
    name = "channels-not-multiple-of-8"
    category = "efficiency"
    severity = "info"
    references = ("NVIDIA, Deep Learning Performance Guide: Tensor Core requirements",)
    INVALID = ["seq(inp(32, 32, 3), conv(30, act='relu'), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(32, act='relu'), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        outputs = {ctx.head_layer(o).name for o in ctx.outputs()}
        odd = []
        for node in ctx.learnable_layers():
            width = node.attrs.get("filters", node.attrs.get("units"))
            if isinstance(width, int) and width >= 8 and width % 8 and node.name not in outputs:
                odd.append(node)
        if odd:
            yield self.finding(f"{names(odd)}: widths not a multiple of 8",
                               layers=[n.name for n in odd],
                               evidence={n.name: n.attrs.get("filters", n.attrs.get("units")) for n in odd[:20]},
                               fix="Round channel counts to multiples of 8.")


@register
class DominantLayer(Rule):
    """
    ## What it does
    Notes a regular convolution (a k×k kernel, k > 1, not grouped) that performs
    more than half of the model's multiply-adds, where a depthwise-separable
    convolution would cut its cost by about k² times.

    Nothing is suggested when the dominant layer is something else (a Dense in an
    MLP, an LSTM, a 1×1 or depthwise convolution): the suggestion would not help
    there. Nor when a layer modellint does not know (an `unknown` node) makes the
    total unknown: a share of an unknown total is not a number.

    ## Why is this bad
    It is where time goes: usually a wide convolution at full resolution. Often
    fine, but the first place to look when the model is slow (downsample
    earlier, use a depthwise-separable convolution, or fewer channels there).

    ## Fix
    Reduce that layer's resolution or width, or make it separable.
    """

    code = "ML952"
    impact = 1
    name = "dominant-layer"
    category = "efficiency"
    severity = "info"
    references = ("Howard et al. 2017, MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
                  "Applications, sec. 3.1 (depthwise-separable cost)",)
    INVALID = ["seq(inp(128, 128, 3), conv(128, act='relu'), pool(4), conv(16, act='relu'), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(128, 128, 3), conv(16, act='relu'), pool(2), conv(32, act='relu'), pool(2), "
             "conv(64, act='relu'), gap(), dense(10, act='softmax'))",
             "seq(inp(784,), dense(512, act='relu'), dense(512, act='relu'), dense(10, act='softmax'))  "
             "# an MLP: no convolution to make separable"]

    def check(self, ctx):
        costs = ctx.costs
        if not all(getattr(c, "macs_known", True) for c in costs.values()):
            return  # an unknown layer: the total, and so every share, is unknown
        total = sum(c.macs for c in costs.values())
        if not total:
            return
        name, cost = max(costs.items(), key=lambda kv: kv[1].macs)
        share = cost.macs / total
        node = ctx.graph[name]
        kernel = tuple(node.attrs.get("kernel") or ())
        if share <= DOMINANT_SHARE or node.op != "conv" or not kernel or max(kernel) <= 1 \
                or (node.attrs.get("groups") or 1) != 1:
            return
        k2 = 1
        for k in kernel:
            k2 *= k
        filters = node.attrs.get("filters") or 0
        ratio = 1 / k2 + (1 / filters if filters else 0)
        yield self.finding(f"{name}: {share:.0%} of all MACs ({cost.macs / 1e6:.1f} M of {total / 1e6:.1f} M)",
                           layers=[name], evidence={"macs": cost.macs, "share": round(share, 3),
                                                    "kernel": list(kernel), "separable_cost_ratio": round(ratio, 3)},
                           explanation=f"A depthwise-separable {'×'.join(map(str, kernel))} convolution with "
                                       f"the same output costs 1/{k2} + 1/{filters or 'filters'} of this one "
                                       f"(≈{ratio:.0%}).",
                           fix="Downsample before it, narrow it, or make it depthwise-separable.",
                           snippets={"keras": "SeparableConv2D(filters, kernel_size, padding=\"same\")",
                                     "torch": "nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c), "
                                              "nn.Conv2d(c, filters, 1))"})
