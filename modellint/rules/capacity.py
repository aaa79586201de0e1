"""ML5xx: capacity against the data."""

from __future__ import annotations

from typing import Optional

from .base import Fix, Rule, register

#: Trainable parameters per training label above which an unregularised model is
#: flagged. Zhang et al. (2017, Theorem 1) show that a two-layer ReLU network with
#: 2n + d weights can fit any labelling of n samples in d dimensions, and that
#: larger networks memorise even random labels; 100 per label is a conservative
#: line, 50 times that bound (the seed model has 21 per sample). A label is what
#: the loss compares: one per sample for a classifier, one per output position for
#: a per-pixel (segmentation, reconstruction) or per-step output, so a 1.9 M
#: parameter U-Net on 3,000 64×64 masks has 0.16 parameters per label, not 642.
PARAMS_PER_SAMPLE = 100
#: Below this many images per class, training a classifier from scratch is the
#: weaker choice, and the advice to use a pretrained backbone and augmentation is
#: a warning rather than a note. ImageNet-1k, the dataset from-scratch CNN recipes
#: are built and tuned for, has about 1,280 images per class: below 1,000 a model
#: learns its filters from less data than those recipes assume, and fine-tuning a
#: pretrained network is usually the better start (Kornblith, Shlens and Le 2019
#: compare the two on 12 datasets; the exceptions are fine-grained sets far from
#: ImageNet). The seed's 615 per class is below the line; CIFAR-10's 5,000 is well
#: above it. It is a judgement line, not a cliff: hence only a warning, and only
#: when the number of classes is known.
SMALL_PER_CLASS = 1000
#: Below this many images in all, a model without augmentation layers gets a note.
SMALL_DATASET = 50_000


def _labels_per_sample(ctx) -> int:
    """How many targets the loss compares per sample: the output positions of a
    per-pixel or per-step output (rank 3 or more), else 1."""
    best = 1
    for out in ctx.outputs():
        shape = out.output_shape
        if shape is not None and len(shape) >= 3 and all(shape[1:-1]):
            n = 1
            for d in shape[1:-1]:
                n *= d
            best = max(best, n)
    return best


def _class_vector_output(ctx) -> bool:
    """Is every output one vector per sample (a classifier head), not a map or a sequence?"""
    shapes = [o.output_shape for o in ctx.outputs()]
    return bool(shapes) and all(s is not None and len(s) == 2 for s in shapes)


def _not_decisive(ctx, framework_hides: str = "") -> Optional[str]:
    """Why the dataset facts do not make training advice decisive (so it is a note),
    or None when they do: an image classifier (one class vector per sample) with
    fewer than SMALL_PER_CLASS images per class, in a framework where the model shows
    what the advice is about."""
    if framework_hides and ctx.graph.framework == "torch":
        return framework_hides
    task = getattr(ctx.dataset, "task", None)
    if task and task not in ("binary", "multiclass", "multilabel"):
        return f"the task is {task}, not classification"
    if not _class_vector_output(ctx):
        return "the output is not one class vector per sample (per-pixel or per-step labels)"
    samples, classes = ctx.dataset.samples, ctx.dataset.classes
    if not classes:
        return "the number of classes is not known (--classes)"
    if samples / classes >= SMALL_PER_CLASS:
        return f"{samples / classes:,.0f} images per class is not below {SMALL_PER_CLASS:,}"
    return None


def _regularised(ctx) -> list:
    """What regularises training: dropout, augmentation, weight decay, kernel regularisers."""
    found = []
    g = ctx.graph
    if any(n.op == "dropout" and n.attrs.get("rate") for n in g):
        found.append("dropout")
    if any(n.op == "augment" for n in g):
        found.append("augmentation")
    if any(n.attrs.get("kernel_regularizer") for n in g):
        found.append("kernel_regularizer")
    if g.training and (g.training.optimizer_config or {}).get("weight_decay"):
        found.append("weight_decay")
    return found


def _is_image_model(ctx) -> bool:
    img = ctx.input_image()
    return img is not None and img[-1] in (1, 3, 4)


@register
class TooManyParamsForData(Rule):
    """
    ## What it does
    Compares trainable parameters with the number of training labels and flags
    more than 100 parameters per label when nothing regularises training (no
    dropout, augmentation, weight decay or kernel regulariser). A classifier has
    one label per sample; a model whose output is a map or a sequence (a U-Net's
    mask, an autoencoder's image) has one per output position.

    ## Why is this bad
    A network with far more parameters than samples can memorise the training
    set, labels and noise alike; without regularisation it will, and
    validation accuracy stalls while training accuracy reaches 100 %.

    ## Fix
    Add augmentation and dropout/weight decay, shrink the model, or start from
    a pretrained backbone.
    """

    code = "ML501"
    name = "too-many-params-for-data"
    category = "capacity"
    severity = "warning"
    needs = ("samples",)
    references = ("Zhang et al. 2017, Understanding deep learning requires rethinking generalization (ICLR)",)
    EXAMPLE_DATASET = {"samples": 1000}
    INVALID = ["seq(inp(64, 64, 3), conv(64, act='relu'), pool(2), flatten(), dense(256, act='relu'), "
               "dense(10, act='softmax'))  # 1,000 samples"]
    VALID = ["seq(inp(64, 64, 3), augment('flip'), conv(64, act='relu'), pool(2), flatten(), dropout(0.5), "
             "dense(256, act='relu'), dense(10, act='softmax'))  # 1,000 samples",
             "seq(inp(64, 64, 3), conv(64, act='relu'), conv(64, act='relu'), conv(64, act='relu'), "
             "conv(1, kernel=1, act='sigmoid'))  # 1,000 masks of 64×64: 4,096 labels each"]

    def check(self, ctx):
        samples = ctx.dataset.samples
        params = ctx.graph.trainable_params
        per = _labels_per_sample(ctx)
        labels = samples * per
        ratio = params / labels
        if ratio > PARAMS_PER_SAMPLE and not _regularised(ctx):
            unit = "sample" if per == 1 else "label"
            of = f"{samples:,} samples" if per == 1 else f"{samples:,} samples × {per:,} output positions"
            yield self.finding(f"{params:,} trainable parameters for {of} "
                               f"({ratio:,.0f} per {unit}) and no regularisation",
                               evidence={"trainable_params": params, "samples": samples,
                                         "labels_per_sample": per, f"params_per_{unit}": round(ratio, 1),
                                         "threshold": PARAMS_PER_SAMPLE},
                               explanation=f"With this many parameters per {unit} the model can memorise the "
                                           "training set.",
                               fix="Add augmentation and dropout or weight decay, or use a smaller/pretrained "
                                   "model.")


@register
class NarrowBeforeHead(Rule):
    """
    ## What it does
    Flags a classifier whose input has fewer features than it has classes, and
    a last convolution that reduces the channel count right before global
    pooling and the head (e.g. 128 → 64).

    ## Why is this bad
    The head can only separate as many directions as it is fed: fewer features
    than classes is a hard bottleneck. Halving the channels in the very last
    layer throws away the widest representation the network built, just before
    the classifier needs it.

    ## Fix
    Keep (or increase) the width of the last stage: e.g. `Conv2D(256, 3)` as the
    last conv, then global pooling.
    """

    code = "ML502"
    impact = 1
    name = "narrow-before-head"
    category = "capacity"
    severity = "info"
    INVALID = ["seq(inp(32, 32, 3), conv(64, act='relu'), pool(2), conv(128, act='relu'), pool(2), "
               "conv(32, act='relu'), gap(), dense(10, act='softmax'))",
               "seq(inp(64,), dense(8, act='relu'), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), conv(64, act='relu'), pool(2), conv(128, act='relu'), pool(2), "
             "conv(256, act='relu'), gap(), dense(10, act='softmax'))"]
    fix = Fix("Widen the layer before the head (the last conv to the widest width, or to the number of classes)",
              "unsafe", "re-initialised", lambda fx: _widen(fx))

    def check(self, ctx):
        for out in ctx.outputs():
            head = ctx.head(out)
            dense = ctx.head_layer(out)
            if dense.op != "dense" or not dense.inputs:
                continue
            feats = ctx.graph.shape_of(dense.inputs[0])
            units = head["units"]
            if feats and feats[-1] and units and feats[-1] < units:
                yield self.finding(f"{dense.name}: {feats[-1]} features feed {units} output units",
                                   layers=[dense.name],
                                   evidence={"features": feats[-1], "units": units},
                                   explanation="The head cannot separate more classes than it has input "
                                               "dimensions.",
                                   fix="Widen the layer before the head to at least the number of classes.")
            convs = [n for n in ctx.backward(dense, through=lambda n: not ctx.is_learnable(n)) if n.op == "conv"]
            for conv in convs:
                before = [n for n in ctx.backward(conv, through=lambda n: not ctx.is_learnable(n))
                          if n.op in ("conv", "separable_conv")]
                widest = max((n.attrs["filters"] for n in before), default=0)
                if widest and conv.attrs["filters"] < widest:
                    yield self.finding(
                        f"{conv.name}: channels drop {widest} → {conv.attrs['filters']} right before the head",
                        layers=[conv.name],
                        evidence={"before": widest, "after": conv.attrs["filters"], "classes": units},
                        explanation=f"The classifier reads {conv.attrs['filters']} features for {units} "
                                    f"classes; the widest representation ({widest}) is discarded one layer "
                                    "before pooling.",
                        fix=f"Keep at least {widest} channels in the last convolution.")


def _widen(fx):
    done = []
    ev = fx.finding.evidence
    for name in fx.finding.layers:
        node = fx.graph.nodes.get(name)
        if node is None:
            continue
        if "after" in ev and node.op == "conv":
            fx.editor.set_attrs(name, filters=ev["before"])
            done.append(f"{name}: {ev['after']} → {ev['before']} filters (the widest before it)")
        elif "features" in ev:
            ctx = fx.fresh_ctx()
            feeders = [n for n in ctx.backward(node, through=lambda n: not ctx.is_learnable(n))
                       if n.op in ("conv", "dense")]
            width = -(-ev["units"] // 8) * 8  # at least one feature per unit, a multiple of 8 (ML951)
            for f in feeders:
                key = "filters" if f.op == "conv" else "units"
                fx.editor.set_attrs(f.name, **{key: width})
                done.append(f"{f.name}: {f.attrs[key]} {key} (at least one feature per output unit)")
    return done


@register
class SmallDatasetFromScratch(Rule):
    """
    ## What it does
    Notes an image model trained from scratch (no pretrained backbone in the
    model) on a small dataset: fewer than 1,000 images per class, or fewer than
    10,000 images when the number of classes is not known.

    It is advice on the training recipe, so a note (`info`) unless the dataset
    facts make it decisive: a warning for a Keras classifier (one class vector
    per sample) with fewer than 1,000 images per class (ImageNet, which
    from-scratch recipes are built for, has about 1,280). Not for a per-pixel
    model (a segmentation set of 3,000 masks carries millions of labels), when the
    classes are not known, or for a PyTorch module, whose pretrained weights live
    in the same modules as random ones (the graph cannot tell them apart).

    ## Why is this bad
    At a few hundred images per class a network learns its low-level filters
    from very little data; an ImageNet-pretrained backbone brings them for free
    and usually wins (Kornblith et al. 2019 compare fine-tuning with training
    from random initialisation on 12 datasets; the exceptions are fine-grained
    sets far from ImageNet).

    ## Fix
    Use a pretrained backbone that accepts your input size (MobileNetV2 or
    EfficientNetB0 at 128–224 px) and fine-tune it.
    """

    code = "ML503"
    impact = 2  # advice on the training recipe: ranked after the defects of the model itself
    name = "small-dataset-from-scratch"
    category = "capacity"
    severity = "warning"
    needs = ("samples",)
    references = ("Kornblith, Shlens, Le 2019, Do Better ImageNet Models Transfer Better? (CVPR)",)
    EXAMPLE_DATASET = {"samples": 8000, "classes": 13}
    INVALID = ["seq(inp(128, 128, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), "
               "dense(13, act='softmax'))  # 8,000 samples, 13 classes"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(13, act='softmax'))  # not an image model",
             "seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), "
             "dense(13, act='softmax'))  # with samples=26000, classes=13"]

    def check(self, ctx):
        if not _is_image_model(ctx) or ctx.graph.submodels:
            return
        samples, classes = ctx.dataset.samples, ctx.dataset.classes
        per_class = samples / classes if classes else None
        small = per_class < SMALL_PER_CLASS if per_class else samples < SMALL_PER_CLASS * 10
        if not small:
            return
        note = _not_decisive(ctx, "a PyTorch module holds pretrained and random weights alike: the graph cannot "
                                  "tell whether it starts from scratch")
        per = f" (≈{per_class:,.0f} per class)" if per_class else ""
        img = ctx.input_image()
        yield self.finding(f"{samples:,} images{per} trained from scratch",
                           severity="info" if note else None,
                           evidence={"samples": samples, "classes": classes,
                                     "per_class": round(per_class) if per_class else None,
                                     "input": list(img[:2]), "decisive_below_per_class": SMALL_PER_CLASS,
                                     **({"advice_only": note} if note else {})},
                           explanation="A pretrained backbone that accepts this input size usually beats a "
                                       "from-scratch CNN at this data size.",
                           fix="Fine-tune a pretrained backbone (e.g. MobileNetV2 or EfficientNetB0).",
                           snippets={"keras": "base = keras.applications.MobileNetV2(include_top=False, "
                                              f"input_shape=({img[0]}, {img[1]}, 3), weights='imagenet')",
                                     "torch": "torchvision.models.mobilenet_v2(weights='IMAGENET1K_V2')"})


@register
class NoAugmentation(Rule):
    """
    ## What it does
    Notes an image model with no augmentation layers trained on fewer than
    50,000 images.

    A warning only when the dataset facts make it decisive: a Keras classifier
    (one class vector per sample) with fewer than 1,000 images per class, the
    line of ML503. Otherwise a note (`info`): augmentation may live in the input
    pipeline, and PyTorch always augments there (`transforms`), where the model
    cannot show it.

    ## Why is this bad
    Augmentation (flips, crops, small rotations and zooms) is the cheapest
    regulariser for images: it multiplies the effective data and encodes
    invariances the model would otherwise have to learn from scarce examples.

    ## Fix
    Add augmentation layers at the start of the model (they are inactive at
    inference), or augment in the data pipeline.
    """

    code = "ML504"
    name = "no-augmentation"
    category = "regularization"
    severity = "warning"
    needs = ("samples",)
    references = ("Shorten & Khoshgoftaar 2019, A survey on Image Data Augmentation for Deep Learning",)
    EXAMPLE_DATASET = {"samples": 8000}
    INVALID = ["seq(inp(128, 128, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), "
               "dense(13, act='softmax'))  # 8,000 samples"]
    VALID = ["seq(inp(128, 128, 3), augment('flip'), augment('rotation'), conv(32, act='relu'), pool(2), "
             "conv(64, act='relu'), gap(), dense(13, act='softmax'))  # 8,000 samples",
             "seq(inp(128, 128, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), "
             "dense(13, act='softmax'))  # with samples=60000"]

    def check(self, ctx):
        if not _is_image_model(ctx) or any(n.op == "augment" for n in ctx.graph):
            return
        if ctx.dataset.samples < SMALL_DATASET:
            note = _not_decisive(ctx, "PyTorch augments in the data pipeline (transforms), which the model "
                                      "cannot show")
            yield self.finding(f"no augmentation layers for {ctx.dataset.samples:,} training images",
                               severity="info" if note else None,
                               evidence={"samples": ctx.dataset.samples, "threshold": SMALL_DATASET,
                                         "decisive_below_per_class": SMALL_PER_CLASS,
                                         **({"advice_only": note} if note else {})},
                               explanation="Augmentation multiplies the effective data and teaches invariances.",
                               fix=ctx.say("Add RandomFlip/RandomRotation/RandomZoom (or augment in the input "
                                           "pipeline; then ignore this rule).",
                                           "Augment in the training transforms (RandomHorizontalFlip, "
                                           "RandomResizedCrop at the model's input size)."),
                               snippets={"keras": 'keras.Sequential([layers.RandomFlip("horizontal"), '
                                                  'layers.RandomRotation(0.1), layers.RandomZoom(0.1)])',
                                         "torch": "transforms.Compose([transforms.RandomHorizontalFlip(), "
                                                  f"transforms.RandomResizedCrop({_side(ctx)}, scale=(0.6, 1.0))])"})


def _side(ctx) -> str:
    """The model's input size for a crop snippet: ``64`` or ``(64, 96)`` (``size`` when unknown)."""
    img = ctx.input_image()
    if img is None or not all(isinstance(d, int) for d in img[:2]):
        return "size"
    return str(img[0]) if img[0] == img[1] else f"({img[0]}, {img[1]})"
