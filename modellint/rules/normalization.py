"""ML1xx: where normalization layers sit."""

from __future__ import annotations

from .. import ops
from .base import Fix, Rule, register
from .context import names
from .fixing import rank_of

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
    fix = Fix("Replace the BatchNorm on the raw input by a fixed scaling (Rescaling(1/255) for images)",
              "unsafe", "re-initialised", lambda fx: _fix_raw_input_batchnorm(fx))
    VALID = ["seq(inp(128, 128, 3), rescale(), bn(), conv(32, act='relu'), gap(), dense(10, act='softmax'))",
             "seq(inp(128, 128, 3), conv(32), bn(), relu(), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        for name in ctx.graph.inputs:
            node = ctx.graph[name]
            for first in _raw_input_batchnorms(ctx, node):
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


def _raw_input_batchnorms(ctx, node):
    return [n for n in ctx.forward(node, through=lambda n: n.op in ("augment", "dropout", "identity"))
            if n.op == "batchnorm"]


def _fix_raw_input_batchnorm(fx):
    """BatchNorm on the raw input → a fixed scaling: ``Rescaling(1/255)`` for images (pixels
    0–255), else a ``Normalization`` holding the BatchNorm's moving mean and variance when
    the weights were read."""
    done = []
    for bn_name in fx.finding.layers:
        bn = fx.graph.nodes.get(bn_name)
        if bn is None or bn.op != "batchnorm":
            continue
        shape = fx.graph.shape_of(bn.inputs[0]) if bn.inputs else None
        image = shape is not None and len(shape) == 4 and shape[-1] in (1, 3, 4)
        if image:
            new = fx.rescaling("rescaling", 1 / 255)
            what = "Rescaling(1/255): pixels 0–255 become 0–1 (state another scale if your images differ)"
        else:
            w = fx.weights(bn_name) or {}
            mean, var = w.get(fx.wname("mean")), w.get(fx.wname("var"))
            new = fx.new_normalization("normalization", mean, var)
            what = ("Normalization with the BatchNorm's moving mean and variance" if mean is not None else
                    "Normalization (adapt it to the training data: layer.adapt(train_x))")
        name = fx.editor.replace(bn_name, new)
        done.append(f"{bn_name} (BatchNormalization on the raw input) → {name}: {what}")
    return done


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

    fix = Fix("Drop the bias cancelled by BatchNorm, folded into the BatchNorm's moving mean (outputs unchanged)",
              "safe", "refolded", lambda fx: _fold_bias(fx))

    def check(self, ctx):
        hits, wasted = [], 0
        for node, _ in cancelled_biases(ctx):
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


def cancelled_biases(ctx) -> list:
    """``[(layer, [batchnorms])]``: conv/dense layers with a bias whose output reaches only
    centring BatchNorms, through ops a per-channel constant passes unchanged."""
    out = []
    for node in ctx.learnable_layers():
        if node.op not in ("conv", "dense", "conv_transpose", "depthwise_conv", "separable_conv"):
            continue
        if not node.attrs.get("use_bias", True) or node.attrs.get("activation", "linear") != "linear":
            continue
        nxt = list(ctx.forward(node, through=lambda n: n.op in _BIAS_TRANSPARENT))
        if nxt and all(n.op == "batchnorm" and n.attrs.get("center", True) for n in nxt):
            out.append((node, nxt))
    return out


def fold_bias_arrays(layer_w: dict, bn_ws: list, names: dict) -> tuple:
    """The exact fold: ``BN(x + b) = BN'(x)`` with ``moving_mean' = moving_mean - b``
    (per channel; at inference BatchNorm computes ``gamma (x - mean) / sqrt(var + eps) + beta``).
    Returns (the layer's arrays without the bias, each BatchNorm's new arrays)."""
    bias = layer_w[names["bias"]]
    layer = {k: v for k, v in layer_w.items() if k != names["bias"]}
    bns = []
    for w in bn_ws:
        w = dict(w)
        w[names["mean"]] = (w[names["mean"]] - bias).astype(w[names["mean"]].dtype)
        bns.append(w)
    return layer, bns


def _fold_bias(fx):
    from .fixing import _WEIGHT_NAMES

    names_ = _WEIGHT_NAMES["torch" if fx.torch else "keras"]
    done = []
    for layer, bns in cancelled_biases(fx.ctx):
        if layer.name not in fx.finding.layers:
            continue
        lw = fx.weights(layer.name)
        bws = [fx.weights(b.name) for b in bns]
        how = "its effect is removed by the BatchNorm anyway"
        if lw is not None and names_["bias"] in lw and all(w is not None and names_["mean"] in w for w in bws):
            new_layer, new_bns = fold_bias_arrays(lw, bws, names_)
            fx.editor.refold(layer.name, new_layer)
            for b, w in zip(bns, new_bns):
                fx.editor.refold(b.name, w)
            how = f"bias folded into {', '.join(b.name for b in bns)}'s moving mean"
        fx.editor.set_attrs(layer.name, use_bias=False)
        done.append(f"{layer.name}: use_bias=False; {how}")
    return done


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
    INVALID = ["seq(inp(32, 32, 3), conv(16, act='relu'), dropout(0.3), bn(), gap(), dense(10, act='softmax'))",
               "seq(inp(32, 32, 3), conv(16, bias=False), dropout(0.3), bn(), relu(), gap(), "
               "dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(16), bn(), relu(), gap(), dropout(0.3), dense(10, act='softmax'))"]
    fix = Fix("Move the Dropout after the last BatchNorm, right before the classifier", "unsafe", "kept",
              lambda fx: _move_dropout(fx), may_reveal=("ML106",))

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


def _move_dropout(fx):
    done = []
    for name in fx.finding.layers:
        node = fx.graph.nodes.get(name)
        if node is None or node.op != "dropout":
            continue
        rate = node.attrs.get("rate")
        fx.editor.remove(name)
        ctx = fx.fresh_ctx()
        heads = [ctx.head_layer(out) for out in ctx.outputs()]
        where = []
        for head in heads:
            before = ctx.producers(head)
            if head.inputs and not (before and before[0].op == "dropout"):
                new = fx.editor.insert_before(head.name, fx.dropout(name, rate))
                where.append(f"{new} before {head.name}")
        done.append(f"{name} (rate {rate}) moved from before a BatchNorm to " + (", ".join(where) or "nowhere: "
                    "the classifier already has a Dropout"))
    return done


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
    fix = Fix("Remove the BatchNorm before the output activation", "unsafe", "kept",
              lambda fx: _remove_layers(fx, "batchnorm", "normalised the logits"))

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


def _remove_layers(fx, op, why, which=None):
    done = []
    for name in (which or fx.finding.layers):
        node = fx.graph.nodes.get(name)
        if node is not None and (op is None or node.op == op):
            fx.editor.remove(name)
            done.append(f"{name} removed ({why})")
    return done


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
    fix = Fix("Remove the second normalization", "unsafe", "kept",
              lambda fx: _remove_layers(fx, None, "normalised the output of a normalization again",
                                        fx.finding.layers[1:]))

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
