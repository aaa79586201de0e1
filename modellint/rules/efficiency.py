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
    Notes a single layer that performs more than half of the model's multiply-adds.

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
    INVALID = ["seq(inp(128, 128, 3), conv(128, act='relu'), pool(4), conv(16, act='relu'), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(128, 128, 3), conv(16, act='relu'), pool(2), conv(32, act='relu'), pool(2), "
             "conv(64, act='relu'), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        total = sum(c.macs for c in ctx.costs.values())
        if not total:
            return
        name, cost = max(ctx.costs.items(), key=lambda kv: kv[1].macs)
        share = cost.macs / total
        if share > DOMINANT_SHARE:
            yield self.finding(f"{name}: {share:.0%} of all MACs ({cost.macs / 1e6:.1f} M of {total / 1e6:.1f} M)",
                               layers=[name], evidence={"macs": cost.macs, "share": round(share, 3)},
                               fix="Downsample before it, narrow it, or make it depthwise-separable.")
