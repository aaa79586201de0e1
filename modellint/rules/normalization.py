"""ML1xx: where normalization layers sit."""

from __future__ import annotations

from .. import ops
from .base import Rule, register
from .context import names

# Ops through which a per-channel constant (a bias) passes unchanged up to a
# per-channel shift: max/avg pooling, padding-free reshapes, dropout at inference.
_BIAS_TRANSPARENT = frozenset({"pool_max", "pool_avg", "dropout", "upsample", "identity", "augment"})


@register
class BatchNormOnRawInput(Rule):
    """
    ## What it does
    Flags a BatchNormalization applied directly to the model input, with no
    fixed scaling (Rescaling, Normalization) before it.

    ## Why is this bad
    The input's scale then depends on each batch's statistics during training and
    on moving averages at inference, so the same image is scaled differently in
    training and in serving, and small or unshuffled batches add noise to every
    pixel. Input standardisation is a fixed property of the data: compute it once.

    ## Fix
    Replace the first BatchNormalization with `Rescaling(1/255)` or a
    `Normalization` layer adapted to the training set (`layer.adapt(train_images)`);
    in PyTorch, `transforms.Normalize(mean, std)` in the data pipeline.
    """

    code = "ML101"
    impact = 1
    name = "batchnorm-on-raw-input"
    category = "normalization"
    severity = "info"
    references = ("Ioffe & Szegedy 2015, Batch Normalization, sec. 3",
                  "https://keras.io/api/layers/preprocessing_layers/numerical/normalization/")
    INVALID = ["seq(inp(128, 128, 3), bn(), conv(32, act='relu'), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(128, 128, 3), rescale(), bn(), conv(32, act='relu'), gap(), dense(10, act='softmax'))",
             "seq(inp(128, 128, 3), conv(32), bn(), relu(), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        for name in ctx.graph.inputs:
            node = ctx.graph[name]
            for first in ctx.forward(node, through=lambda n: n.op in ("augment", "dropout", "identity")):
                if first.op == "batchnorm":
                    shape = ctx.graph.display_shape(node.output_shape)
                    yield self.finding(
                        f"{first.name} normalises the raw input {name} with batch statistics",
                        layers=[first.name],
                        evidence={"input": name, "input_shape": list(shape) if shape else None},
                        explanation="Input scaling then depends on each batch during training and on moving "
                                    "averages at inference; a fixed scaling does the job deterministically.",
                        fix=ctx.say("Use Rescaling(1/255) or a Normalization layer adapted to the training "
                                    "data instead of BatchNormalization on the input.",
                                    "Scale the images in the transforms (transforms.ToTensor(), "
                                    "transforms.Normalize(mean, std)) instead of a BatchNorm on the input."),
                        snippets={"keras": "norm = keras.layers.Normalization()\nnorm.adapt(train_images)",
                                  "torch": "transforms.Normalize(mean=train_mean, std=train_std)"})


@register
class BiasBeforeBatchNorm(Rule):
    """
    ## What it does
    Flags convolution and dense layers with a bias whose output reaches a
    BatchNormalization through nothing but pooling or dropout.

    ## Why is this bad
    A per-channel bias passes through max/average pooling as the same constant,
    and BatchNormalization subtracts the per-channel mean: the bias is cancelled
    exactly. Those parameters never affect the output; BN's own beta does their job.

    ## Fix
    `Conv2D(..., use_bias=False)` (`nn.Conv2d(..., bias=False)`) before BatchNormalization.
    """

    code = "ML102"
    impact = 1
    name = "bias-before-batchnorm"
    category = "normalization"
    severity = "warning"
    references = ("Ioffe & Szegedy 2015, Batch Normalization, sec. 3.2",)
    INVALID = ["seq(inp(32, 32, 3), conv(16), bn(), relu(), gap(), dense(10, act='softmax'))",
               "seq(inp(32, 32, 3), conv(16), pool(2), bn(), relu(), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16, bias=False), bn(), relu(), gap(), dense(10, act='softmax'))",
             "seq(inp(32, 32, 3), conv(16, act='relu'), bn(), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        hits, wasted = [], 0
        for node in ctx.learnable_layers():
            if node.op not in ("conv", "dense", "conv_transpose", "depthwise_conv", "separable_conv"):
                continue
            if not node.attrs.get("use_bias", True) or node.attrs.get("activation", "linear") != "linear":
                continue
            nxt = list(ctx.forward(node, through=lambda n: n.op in _BIAS_TRANSPARENT))
            if nxt and all(n.op == "batchnorm" and n.attrs.get("center", True) for n in nxt):
                shape = node.output_shape
                hits.append(node)
                wasted += shape[-1] if shape and shape[-1] else 0
        if hits:
            yield self.finding(
                f"{names(hits)}: bias is cancelled by the BatchNormalization that follows",
                layers=[n.name for n in hits],
                evidence={"layers": [n.name for n in hits], "wasted_params": wasted},
                explanation="A per-channel bias passes unchanged through pooling and dropout, and the "
                            f"next BatchNormalization subtracts the channel mean: {wasted} parameters "
                            "that never matter.",
                fix="Drop the bias of layers that feed BatchNormalization.",
                snippets={"keras": "Conv2D(filters, 3, padding='same', use_bias=False)",
                          "torch": "nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)"})


@register
class DropoutBeforeBatchNorm(Rule):
    """
    ## What it does
    Flags Dropout whose output goes straight into BatchNormalization.

    ## Why is this bad
    Dropout changes the variance of its output between training and inference;
    BatchNormalization's moving variance is learned under training-time dropout
    and is then wrong at inference ("variance shift"), which degrades accuracy.

    ## Fix
    Put Dropout after the last BatchNormalization (just before the classifier),
    or drop it where BatchNormalization already regularises.
    """

    code = "ML103"
    name = "dropout-before-batchnorm"
    category = "normalization"
    severity = "warning"
    references = ("Li, Chen, Hu, Yang 2019, Understanding the Disharmony between Dropout and Batch "
                  "Normalization by Variance Shift (CVPR)",)
    INVALID = ["seq(inp(32, 32, 3), conv(16, act='relu'), dropout(0.3), bn(), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16), bn(), relu(), gap(), dropout(0.3), dense(10, act='softmax'))"]

    def check(self, ctx):
        for node in ctx.graph:
            if node.op != "dropout" or not node.attrs.get("rate"):
                continue
            bns = [n for n in ctx.consumers(node) if n.op == "batchnorm"]
            for bn in bns:
                yield self.finding(
                    f"{ctx.label(node)} ({'p' if ctx.graph.framework == 'torch' else 'rate'}="
                    f"{node.attrs['rate']}) feeds {ctx.label(bn)} directly",
                    layers=[node.name, bn.name], evidence={"dropout_rate": node.attrs["rate"]},
                    explanation="BatchNormalization learns its moving variance under dropout and applies it "
                                "without dropout at inference: a variance shift.",
                    fix=ctx.say("Move Dropout after the last BatchNormalization, before the classifier.",
                                "Move nn.Dropout after the last BatchNorm, before the classifier."))


@register
class BatchNormBeforeOutput(Rule):
    """
    ## What it does
    Flags a BatchNormalization immediately before the output softmax/sigmoid.

    ## Why is this bad
    It normalises the logits to unit variance per batch, capping how confident
    the classifier can be during training and making predictions depend on batch
    composition; at inference the moving statistics are used instead.

    ## Fix
    Remove it: let the final Dense produce unnormalised logits.
    """

    code = "ML104"
    name = "batchnorm-before-output"
    category = "normalization"
    severity = "warning"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(10), bn(), softmax())"]
    VALID = ["seq(inp(64,), dense(32), bn(), relu(), dense(10, act='softmax'))"]

    def check(self, ctx):
        for out in ctx.outputs():
            head = ctx.head(out)
            if head["activation"] not in ("softmax", "sigmoid"):
                continue
            act_node = out
            while act_node.op != "activation" and act_node.inputs:
                act_node = ctx.producers(act_node)[0]
            for p in ctx.producers(act_node):
                if p.op == "batchnorm":
                    yield self.finding(f"{p.name} normalises the logits right before the output "
                                       f"{head['activation']}", layers=[p.name],
                                       explanation="Per-batch normalised logits cap the classifier's confidence "
                                                   "and tie predictions to batch composition.",
                                       fix="Remove the BatchNormalization before the output activation.")


@register
class StackedNormalization(Rule):
    """
    ## What it does
    Flags a normalization layer whose input comes straight from another one.

    ## Why is this bad
    The second normalization undoes the first one's scale and shift: it costs
    compute and parameters and adds nothing but noise from a second set of
    batch statistics.

    ## Fix
    Keep one normalization between two learnable layers.
    """

    code = "ML105"
    impact = 1
    name = "stacked-normalization"
    category = "normalization"
    severity = "warning"
    INVALID = ["seq(inp(32, 32, 3), conv(16), bn(), bn(), relu(), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16), bn(), relu(), conv(16), bn(), relu(), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        for node in ctx.graph:
            if ctx.kind(node) != ops.NORMALIZATION:
                continue
            for p in ctx.producers(node):
                if ctx.kind(p) == ops.NORMALIZATION:
                    yield self.finding(f"{node.name} normalises the output of {p.name} again",
                                       layers=[p.name, node.name],
                                       fix=f"Remove {node.name} (or {p.name}).")


@register
class BatchNormAfterActivation(Rule):
    """
    ## What it does
    Notes BatchNormalization placed after a layer's ReLU-family activation
    (`Conv2D(activation="relu")` then `BatchNormalization()`), rather than between
    the layer and its activation as in the paper that introduced it and in the
    reference architectures (ResNet, the Keras applications, torchvision). One note
    lists every such layer.

    ## Why is this bad
    It is not a bug: both orders train, and some report the post-activation order
    as slightly better. But it is a departure from the design most pretrained
    weights, papers and tutorials assume; normalising before the ReLU keeps about
    half the units active at initialisation, and it lets the layer drop its bias
    (BatchNorm's beta replaces it). Worth a look, not a warning.

    ## Fix
    `Conv2D(filters, 3, use_bias=False)`, `BatchNormalization()`, `Activation("relu")`
    (PyTorch: `nn.Conv2d(..., bias=False)`, `nn.BatchNorm2d(...)`, `nn.ReLU()`).
    """

    code = "ML106"
    name = "batchnorm-after-activation"
    category = "normalization"
    severity = "info"
    references = ("Ioffe & Szegedy 2015, Batch Normalization (ICML), section 3.2",)
    INVALID = ["seq(inp(32, 32, 3), conv(16, act='relu'), bn(), conv(32, act='relu'), bn(), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16, bias=False), bn(), relu(), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        found = []
        for node in ctx.graph:
            if node.op != "batchnorm":
                continue
            before = ctx.producers(node)
            act = before[0] if len(before) == 1 else None
            if act is None or act.op != "activation" or \
                    ops.ACTIVATION_FAMILY.get(act.attrs.get("function")) != "relu":
                continue
            layer = ctx.layer_of(act)
            source = ctx.producers(act)
            if layer is act and source:
                layer = source[0]
            if ctx.is_learnable(layer):
                found.append((layer.name, node.name))
        if found:
            layers = [bn for _, bn in found]
            yield self.finding(f"{names(layers)}: BatchNormalization after the activation of "
                               f"{names([layer for layer, _ in found])}",
                               layers=layers, evidence={"pairs": [f"{a} → {b}" for a, b in found]},
                               explanation="Both orders train; the reference designs normalise before the "
                                           "activation (conv → BN → ReLU), which lets the conv drop its bias.",
                               fix="conv (use_bias=False) → BatchNormalization → activation",
                               snippets={"keras": 'Conv2D(f, 3, padding="same", use_bias=False), '
                                                  'BatchNormalization(), Activation("relu")',
                                         "torch": "nn.Conv2d(c, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), "
                                                  "nn.ReLU()"})
