"""ML2xx: non-linearities: missing, doubled, misplaced, saturating."""

from __future__ import annotations

from .. import ops
from .base import Fix, Rule, register
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
    dropout, padding or reshaping in between. One finding lists every such pair
    with the ops on its path. Not flagged, because they are designs rather than
    slips: pairs with a pointwise (1×1) or depthwise convolution (separable
    convolutions), a narrower layer between two wider ones (a linear bottleneck:
    an autoencoder's code, MobileNetV2), and paths through a merge with another
    branch (a U-Net's transposed convolution → concatenation → convolution,
    Xception's exit flow).

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
    fix = Fix("Add a ReLU after each hidden layer (after its BatchNorm when one follows)", "unsafe", "kept",
              lambda fx: _add_nonlinearity(fx))
    INVALID = ["seq(inp(32, 32, 3), conv(16), pool(2), bn(), conv(32), gap(), dense(10, act='softmax'))",
               "seq(inp(64,), dense(32), dense(10, act='softmax'))",
               "seq(inp(784,), dense(512), dense(512), dense(10))"]
    VALID = ["seq(inp(32, 32, 3), conv(16), bn(), relu(), pool(2), conv(32, act='relu'), gap(), "
             "dense(10, act='softmax'))",
             "seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'))",
             "seq(inp(784,), dense(256, act='relu'), dense(32), dense(256, act='relu'), dense(784, act='sigmoid'))"]

    def check(self, ctx):
        pairs = linear_pairs(ctx)
        if not pairs:
            return
        chain = list(dict.fromkeys(name for a, b, _ in pairs for name in (a, b)))
        order = {n.name: i for i, n in enumerate(ctx.graph)}
        chain.sort(key=order.get)
        between = sorted({t for _, _, via in pairs for t in via})
        nodes = [ctx.graph[n] for n in chain]
        yield self.finding(
            f"{names(chain)}: no non-linearity between learnable layers",
            layers=chain,
            evidence={"pairs": [f"{a} → {b}" + (f" (via {', '.join(via)})" if via else "") for a, b, via in pairs],
                      "activations": {n.name: n.attrs.get("activation", "linear") for n in nodes},
                      "only_between": between},
            explanation="These layers have linear activations and only linear or near-linear ops "
                        f"({', '.join(between) or 'nothing'}) between them, so they act almost as one "
                        "linear map.",
            fix="Add a non-linearity after each hidden conv/dense layer.",
            snippets={"keras": 'Conv2D(filters, 3, padding="same", activation="relu")\n'
                               '# or: Conv2D(..., use_bias=False), BatchNormalization(), Activation("relu")',
                      "torch": "nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), "
                               "nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))"})


# Ops a ReLU may be moved past when looking for the BatchNorm after a layer (conv → pool → BN → ReLU).
_SLIDE = ("pool_max", "pool_avg", "batchnorm", "dropout", "identity", "zero_pad")


def _add_nonlinearity(fx):
    """A ReLU after each earlier layer of a linear pair: right after the BatchNorm that follows
    it on a single path (conv → pool → BN → ReLU, the order ML106 expects), else as the
    layer's own activation (Keras ``activation="relu"``; PyTorch an ``nn.ReLU`` after it)."""
    ctx = fx.ctx
    done = []
    targets = list(dict.fromkeys(a for a, _, _ in linear_pairs(ctx) if a in fx.finding.layers))
    for a in targets:
        node = fx.graph[a]
        last_bn, cur = None, node
        while True:
            nxt = fx.graph.consumers(cur)
            if len(nxt) != 1 or nxt[0].op not in _SLIDE:
                break
            cur = nxt[0]
            if cur.op == "batchnorm":
                last_bn = cur
        if last_bn is not None:
            name = fx.editor.insert_after(last_bn.name, fx.activation(f"{a}_relu", "relu"))
            done.append(f"{name}: ReLU after {last_bn.name} (the BatchNorm after {a})")
        elif not fx.torch and node.op in ("conv", "dense", "separable_conv", "conv_transpose"):
            fx.editor.set_attrs(a, activation="relu")
            done.append(f"{a}: activation='relu'")
        else:
            name = fx.editor.insert_after(a, fx.activation(f"{a}_relu", "relu"))
            done.append(f"{name}: ReLU after {a}")
    return done


# Ops that bring in another branch: a path through one is not a plain stack of linear layers
# (a U-Net's transposed conv → concatenation → conv, Xception's exit flow → add → conv).
_MERGES = ("add", "subtract", "concat", "average", "multiply", "dot", "maximum", "minimum")


def _width_in(ctx, node):
    shape = ctx.graph.shape_of(node.inputs[0]) if node.inputs else None
    return shape[-1] if shape else None


def _width_out(node):
    shape = node.output_shape
    return shape[-1] if shape else None


def linear_pairs(ctx) -> list:
    """``[(a, b, ops between)]``: full learnable layers ``a`` whose output reaches full learnable
    layer ``b`` only through linear, single-branch ops. A path through a merge is not
    followed; a narrower middle (``a`` narrows, ``b`` widens again: a linear bottleneck,
    as in autoencoders' codes and MobileNetV2) is a factorisation by design. Each walk stops
    at the first learnable, non-linear or merging node, so the rule stays linear in the
    graph size."""
    full = {n.name for n in ctx.graph if _full_layer(ctx, n)}
    out = []
    for a in ctx.graph:
        if a.name not in full or a.shares_params_with:
            continue
        seen, stack = set(), [(c, ()) for c in ctx.consumers(a)]
        while stack:
            n, via = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            if n.name in full:
                w_in, w_mid, w_out = _width_in(ctx, a), _width_out(a), _width_out(n)
                bottleneck = all(isinstance(w, int) for w in (w_in, w_mid, w_out)) and w_mid < w_in and \
                    w_mid < w_out
                if not bottleneck:
                    out.append((a.name, n.name, tuple(dict.fromkeys(via))))
                continue
            if ctx.is_learnable(n) or ctx.is_nonlinear(n) or n.op in _MERGES:
                continue
            if n.op == "activation" and n.fused_into == a.name:  # Dense(activation=None) makes no node
                continue
            label = n.source_type or n.op
            stack.extend((c, via + ((label,) if n.op not in ("activation", "identity") else ())) for c in
                         ctx.consumers(n))
    return out


@register
class DoubleActivation(Rule):
    """
    ## What it does
    Flags an activation applied directly to the output of another activation.

    ## Why is this bad
    Usually a mistake: `Dense(..., activation="relu")` followed by
    `Activation("relu")` does nothing twice. (An activation right before the
    output's softmax/sigmoid is reported once, at the head, by ML305.)

    ## Fix
    Keep one activation; the output layer should produce raw logits for its softmax.
    """

    code = "ML202"
    name = "double-activation"
    category = "activation"
    severity = "warning"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), relu(), dense(10, act='softmax'))"]
    fix = Fix("Remove the second activation", "unsafe", "kept", lambda fx: _remove_second(fx))
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(10), softmax())",
             "seq(inp(64,), dense(10, act='relu'), softmax())  # reported once, by ML305, at the head"]

    def check(self, ctx):
        from .output_head import activation_before_head

        # an activation right before the output's softmax/sigmoid is the head's problem (ML305): one finding
        at_head = {a.name for h in ctx.task.heads for a in [activation_before_head(ctx, h)] if a is not None}
        for node in ctx.graph:
            if node.op != "activation" or node.attrs.get("function") in ops.LINEAR_ACTIVATIONS:
                continue
            if any(p.name in at_head for p in ctx.producers(node)):
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


def _remove_second(fx):
    """The activation applied to another activation's output goes (the same function twice is
    a no-op for ReLU; for two different functions the first one, the layer's own, stays)."""
    done = []
    for node in list(fx.graph):
        if node.op != "activation" or node.fused_into or node.attrs.get("function") in ops.LINEAR_ACTIVATIONS:
            continue
        prev = fx.graph.producers(node)
        if len(prev) == 1 and prev[0].op == "activation" and fx.ctx.layer_of(node).name in fx.finding.layers \
                and prev[0].attrs.get("function") not in ops.LINEAR_ACTIVATIONS:
            fx.editor.remove(node.name)
            done.append(f"{node.name} ({node.attrs.get('function')}) removed: it followed "
                        f"{prev[0].attrs.get('function')}")
    return done


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
