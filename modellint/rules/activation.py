"""ML2xx: non-linearities: missing, doubled, misplaced, saturating."""

from __future__ import annotations

from .. import ops
from .base import Rule, register
from .context import names

_SATURATING = ("tanh", "sigmoid", "hard_sigmoid", "softsign")


def _full_layer(ctx, node) -> bool:
    """A layer that mixes channels *and* space (or a dense layer on vectors). Pairs
    involving a pointwise (1×1, or Dense on a feature map) or depthwise convolution
    are factorisations by design (separable convs, MobileNetV2's linear bottleneck,
    ConvNeXt blocks) and are not flagged."""
    if not ctx.is_learnable(node) or node.op in ("rnn", "attention", "depthwise_conv"):
        return False
    if node.op == "dense":
        shape = ctx.graph.shape_of(node.inputs[0]) if node.inputs else None
        return shape is not None and len(shape) == 2
    if node.op in ("conv", "separable_conv", "conv_transpose"):
        return max(node.attrs.get("kernel", (1,))) > 1 and node.attrs.get("groups", 1) == 1
    return False


@register
class MissingNonlinearity(Rule):
    """
    ## What it does
    Flags learnable layers (convolutions, dense layers) whose output reaches the
    next learnable layer through no non-linearity: only normalization, pooling,
    dropout, padding or reshaping in between. Pairs with a pointwise (1×1) or
    depthwise convolution are factorisations by design (separable convolutions,
    linear bottlenecks) and are not flagged.

    ## Why is this bad
    A composition of linear maps is one linear map. BatchNormalization is affine
    at inference, average pooling and reshapes are linear, and max pooling is a
    poor substitute for an activation; the stacked layers then add parameters
    and compute but little expressive power. Keras layers default to
    `activation=None` (linear), which makes this easy to miss.

    ## Fix
    Give each hidden conv/dense layer a non-linearity: `Conv2D(..., activation="relu")`,
    or an `Activation("relu")` after its BatchNormalization.
    """

    code = "ML201"
    impact = 3
    name = "missing-nonlinearity"
    category = "activation"
    severity = "warning"
    references = ("Goodfellow, Bengio, Courville 2016, Deep Learning, sec. 6.1",)
    INVALID = ["seq(inp(32, 32, 3), conv(16), pool(2), bn(), conv(32), gap(), dense(10, act='softmax'))",
               "seq(inp(64,), dense(32), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16), bn(), relu(), pool(2), conv(32, act='relu'), gap(), "
             "dense(10, act='softmax'))",
             "seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'))"]

    def check(self, ctx):
        # One pass over the graph, not one walk per layer: a walk from each layer along a long linear
        # path (the adds of many residual blocks) made this rule cubic (issue 10).
        passthrough = lambda n: not ctx.is_learnable(n) and not ctx.is_nonlinear(n)  # noqa: E731
        full = {n.name for n in ctx.graph if _full_layer(ctx, n)}
        has_next = ctx.forward_any(through=passthrough, keep=lambda n: n.name in full)
        starts = [node for node in ctx.learnable_layers() if node.name in full and has_next(node)]
        in_chain = {n.name for n in starts}
        in_chain.update(n.name for n in ctx.forward_many(starts, through=passthrough) if n.name in full)
        if in_chain:
            linear_chain = [n for n in ctx.graph if n.name in in_chain]  # in graph order
            between = sorted({n.source_type or n.op for n in ctx.graph
                              if n.op in ("batchnorm", "pool_max", "pool_avg", "dropout", "global_pool")
                              and any(p.name in in_chain for p in ctx.producers(n))})
            yield self.finding(
                f"{names(linear_chain)}: no non-linearity between learnable layers",
                layers=[n.name for n in linear_chain],
                evidence={"layers": [n.name for n in linear_chain],
                          "activations": {n.name: n.attrs.get("activation", "linear") for n in linear_chain},
                          "only_between": between},
                explanation="These layers have linear activations and only linear or near-linear ops "
                            f"({', '.join(between) or 'nothing'}) between them, so they act almost as one "
                            "linear map.",
                fix="Add a non-linearity after each hidden conv/dense layer.",
                snippets={"keras": 'Conv2D(filters, 3, padding="same", activation="relu")\n'
                                   '# or: Conv2D(..., use_bias=False), BatchNormalization(), Activation("relu")',
                          "torch": "nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), "
                                   "nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))"})


@register
class DoubleActivation(Rule):
    """
    ## What it does
    Flags an activation applied directly to the output of another activation.

    ## Why is this bad
    Usually a mistake: `Dense(..., activation="relu")` followed by
    `Activation("relu")` does nothing twice; ReLU before the output softmax
    clips every negative logit to zero, so the classifier cannot express
    "unlikely" for most classes.

    ## Fix
    Keep one activation; the output layer should produce raw logits for its softmax.
    """

    code = "ML202"
    name = "double-activation"
    category = "activation"
    severity = "warning"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), relu(), dense(10, act='softmax'))",
               "seq(inp(64,), dense(10, act='relu'), softmax())"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(10), softmax())"]

    def check(self, ctx):
        for node in ctx.graph:
            if node.op != "activation" or node.attrs.get("function") in ops.LINEAR_ACTIVATIONS:
                continue
            for p in ctx.producers(node):
                if p.op == "activation" and p.attrs.get("function") not in ops.LINEAR_ACTIVATIONS:
                    first, second = p.attrs["function"], node.attrs["function"]
                    layer = ctx.layer_of(p)
                    yield self.finding(
                        f"{ctx.layer_of(node).name}: {second} applied to the output of {layer.name}'s {first}",
                        layers=[layer.name, ctx.layer_of(node).name],
                        evidence={"first": first, "second": second},
                        explanation="Two activations in a row are almost always a mistake"
                                    + ("; ReLU before softmax zeroes every negative logit."
                                       if second == "softmax" and first.startswith("relu") else "."),
                        fix=f"Remove one of them (make {layer.name} linear).")


@register
class SoftmaxInsideNetwork(Rule):
    """
    ## What it does
    Flags softmax activations inside the network whose output is neither a model
    output nor used as a gate (multiplied with features) or as attention weights
    (through a `Permute`/`Reshape`/`RepeatVector` on the way). All of a model's
    hidden softmaxes make one finding that lists them. Hidden sigmoids are left to
    ML204: a shallow sigmoid MLP is a textbook design, a deep unnormalised stack of
    them is the problem.

    ## Why is this bad
    Softmax squashes a whole feature vector into a probability distribution:
    most values become tiny, gradients through it vanish, and the next layer
    sees features that sum to one. It belongs at the output (or in attention
    and gating, where the normalisation is the point).

    ## Fix
    Use ReLU (or another hidden activation) inside the network.
    """

    code = "ML203"
    name = "softmax-inside-network"
    category = "activation"
    severity = "warning"
    INVALID = ["seq(inp(64,), dense(32, act='softmax'), dense(10, act='softmax'))",
               "seq(inp(64,), dense(32, act='softmax'), dense(32, act='softmax'), dense(10, act='softmax'))"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'))",
             "seq(inp(64,), dense(32, act='sigmoid'), dense(16, act='sigmoid'), dense(10, act='softmax'))"]

    _THROUGH = ("reshape", "flatten", "dropout", "identity", "permute", "repeat")

    def check(self, ctx):
        outputs = {n.name for n in ctx.outputs()}
        hidden, feeds = [], []
        for node in ctx.graph:
            if node.op != "activation" or node.attrs.get("function") != "softmax" or node.name in outputs:
                continue
            after = list(ctx.forward(node, through=lambda n: n.op in self._THROUGH))
            if not after or any(n.op in ("multiply", "dot", "attention", "unknown") for n in after):
                continue  # a gate or attention weights
            if all(n.name in outputs for n in after):
                continue
            hidden.append(ctx.layer_of(node).name)
            feeds.extend(n.name for n in after if n.name not in feeds)
        if hidden:
            yield self.finding(f"{names(hidden)}: softmax inside the network feeds {names(feeds)}",
                               layers=hidden, evidence={"function": "softmax", "layers": hidden},
                               explanation="softmax squashes hidden features into a distribution that sums to 1 "
                                           "and saturates gradients; it belongs at the output or in "
                                           "gating/attention.",
                               fix="Use relu (or gelu/silu) for hidden layers.")


@register
class DeepSaturatingStack(Rule):
    """
    ## What it does
    Flags chains of four or more tanh/sigmoid activations with no normalization
    layer anywhere in the model.

    ## Why is this bad
    tanh and sigmoid saturate: their gradient is at most 1 (tanh) or 0.25
    (sigmoid) and near zero for large inputs, so gradients shrink
    geometrically with depth ("vanishing gradients"). Normalization or
    ReLU-family activations avoid it.

    ## Fix
    Use ReLU/GELU for hidden layers, or add BatchNormalization/LayerNormalization.
    """

    code = "ML204"
    name = "deep-saturating-stack"
    category = "activation"
    severity = "warning"
    references = ("Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward "
                  "neural networks (AISTATS)",)
    INVALID = ["seq(inp(64,), dense(64, act='tanh'), dense(64, act='tanh'), dense(64, act='sigmoid'), "
               "dense(64, act='tanh'), dense(10, act='softmax'))"]
    VALID = ["seq(inp(64,), dense(64, act='tanh'), dense(64, act='tanh'), dense(10, act='softmax'))",
             "seq(inp(64,), dense(64, act='relu'), dense(64, act='relu'), dense(64, act='relu'), "
             "dense(64, act='relu'), dense(10, act='softmax'))"]

    def check(self, ctx):
        if any(ctx.kind(n) == ops.NORMALIZATION for n in ctx.graph):
            return
        outputs = {n.name for n in ctx.outputs()}
        saturating = [n for n in ctx.graph if n.op == "activation" and n.attrs.get("function") in _SATURATING
                      and n.name not in outputs]
        if len(saturating) >= 4:
            layers = [ctx.layer_of(n).name for n in saturating]
            yield self.finding(f"{names(layers)}: {len(saturating)} saturating activations and no normalization",
                               layers=layers, evidence={"count": len(saturating),
                                                        "functions": sorted({n.attrs['function'] for n in saturating})},
                               explanation="Gradients shrink by the activation's slope (<= 1 for tanh, <= 0.25 "
                                           "for sigmoid) at every layer.",
                               fix="Use relu/gelu in hidden layers or add normalization between them.")


# ML205 (missing-output-activation) lives with the other head rules in output_head.py.
