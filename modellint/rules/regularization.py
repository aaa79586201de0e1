"""ML8xx: dropout and friends."""

from __future__ import annotations

from .base import Fix, Rule, register


@register
class DropoutRateHigh(Rule):
    """
    ## What it does
    Flags dropout rates above 0.5.

    ## Why is this bad
    Keras' `rate` is the fraction *dropped*. Above 0.5 more than half the units
    are zeroed at every step; the network trains slowly and underfits. A rate
    of 0.8 is often a confusion with TensorFlow 1's `keep_prob`.

    ## Fix
    Use 0.1–0.5 (0.5 before large dense layers, 0.1–0.3 elsewhere).
    """

    code = "ML801"
    name = "dropout-rate-high"
    category = "regularization"
    severity = "warning"
    references = ("Srivastava et al. 2014, Dropout (JMLR), sec. 7.3",)
    INVALID = ["seq(inp(64,), dense(64, act='relu'), dropout(0.8), dense(10, act='softmax'))"]
    VALID = ["seq(inp(64,), dense(64, act='relu'), dropout(0.5), dense(10, act='softmax'))"]

    def check(self, ctx):
        for node in ctx.graph:
            rate = node.attrs.get("rate") if node.op == "dropout" else None
            if node.attrs.get("variant") in ("dropout", "spatial", "alpha") and isinstance(rate, (int, float)) \
                    and rate > 0.5:
                yield self.finding(f"{node.name}: dropout rate {rate} drops {rate:.0%} of units",
                                   layers=[node.name], evidence={"rate": rate},
                                   explanation="rate is the fraction dropped, not kept.",
                                   fix=f"Dropout({1 - rate:.1f}) if {rate} was meant as keep probability.")


def _dropout_before_head(fx):
    done = []
    for name in fx.finding.layers:
        node = fx.graph.nodes.get(name)
        if node is None or node.op != "dropout":
            continue
        rate = node.attrs.get("rate")
        fx.editor.remove(name)
        ctx = fx.fresh_ctx()
        for out in ctx.outputs():
            head = ctx.head_layer(out)
            if head.inputs and ctx.producers(head)[0].op != "dropout":
                new = fx.editor.insert_before(head.name, fx.dropout(name, rate))
                done.append(f"{name} (rate {rate}) moved from the output to {new}, before {head.name}")
    return done


@register
class DropoutOnOutput(Rule):
    """
    ## What it does
    Flags dropout applied after the output layer (between the classifier and
    the model output).

    ## Why is this bad
    It randomly zeroes predictions (or logits) during training, so the loss
    sees corrupted outputs; it regularises nothing the model can learn from.

    ## Fix
    Put dropout before the final Dense layer.
    """

    code = "ML802"
    name = "dropout-on-output"
    category = "regularization"
    severity = "warning"
    INVALID = ["seq(inp(64,), dense(64, act='relu'), dense(10, act='softmax'), dropout(0.3))"]
    VALID = ["seq(inp(64,), dense(64, act='relu'), dropout(0.3), dense(10, act='softmax'))"]
    fix = Fix("Move the Dropout before the last layer", "unsafe", "kept", lambda fx: _dropout_before_head(fx))

    def check(self, ctx):
        for out in ctx.outputs():
            node = out
            while node.op in ("dropout", "activation", "reshape", "flatten", "identity") and node.inputs:
                if node.op == "dropout" and node.attrs.get("rate"):
                    yield self.finding(f"{node.name}: dropout on the model output", layers=[node.name],
                                       evidence={"rate": node.attrs["rate"]},
                                       fix=ctx.say("Move it before the last Dense layer.",
                                                   "Move it before the last nn.Linear."))
                    break
                node = ctx.producers(node)[0]


@register
class DropoutInConvBlock(Rule):
    """
    ## What it does
    Flags plain Dropout on a spatial feature map that feeds another convolution.

    ## Why is this bad
    Neighbouring pixels of a feature map are strongly correlated, so dropping
    single activations removes almost no information: the next convolution
    recovers them from the neighbours. SpatialDropout drops whole channels.

    ## Fix
    `SpatialDropout2D(rate)` (`nn.Dropout2d`), or DropBlock.
    """

    code = "ML803"
    impact = 1
    name = "dropout-in-conv-block"
    category = "regularization"
    severity = "info"
    references = ("Tompson et al. 2015, Efficient Object Localization Using Convolutional Networks (CVPR)",)
    INVALID = ["seq(inp(32, 32, 3), conv(32, act='relu'), dropout(0.2), conv(64, act='relu'), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(32, act='relu'), spatial_dropout(0.2), conv(64, act='relu'), gap(), "
             "dense(10, act='softmax'))"]

    def check(self, ctx):
        for node in ctx.graph:
            if node.op != "dropout" or node.attrs.get("variant") != "dropout" or not node.attrs.get("rate"):
                continue
            shape = node.output_shape
            if shape is None or len(shape) != 4:
                continue
            nxt = list(ctx.forward(node, through=lambda n: not ctx.is_learnable(n) and n.op != "global_pool"))
            if any(n.op in ("conv", "depthwise_conv", "separable_conv") for n in nxt):
                yield self.finding(f"{node.name}: plain Dropout on a {shape[1]}×{shape[2]} feature map",
                                   layers=[node.name], evidence={"rate": node.attrs["rate"]},
                                   fix=f"SpatialDropout2D({node.attrs['rate']})")
