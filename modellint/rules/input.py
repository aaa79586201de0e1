"""ML90x: the model input against the data."""

from __future__ import annotations

from .base import Rule, register


def _has_input_scaling(ctx) -> bool:
    for name in ctx.graph.inputs:
        for n in ctx.forward(ctx.graph[name], through=lambda n: n.op in ("augment", "identity", "dropout",
                                                                         "resize", "pad", "crop")):
            if n.op in ("rescaling", "normalization", "batchnorm", "layernorm"):
                return True
    return False


@register
class InputSizeMismatch(Rule):
    """
    ## What it does
    Compares the model's image input (H×W×C) with the dataset's image size and
    channels (`--image-size`, or read from `--data`). After `modellint probe`
    it steps aside: the data checks ML006 and ML007 have compared every image
    with the input.

    ## Why is this bad
    Images are then resized (losing detail or wasting compute) or fail to load;
    grey images into an RGB model (or the reverse) need an explicit conversion.

    ## Fix
    Build the model for the data's size, or resize deliberately in the pipeline.
    """

    code = "ML901"
    name = "input-size-mismatch"
    category = "input-shape"
    severity = "warning"
    needs = ("image_size",)
    #: after a probe run these data checks have compared every image with the input: this rule steps aside
    covered_by_data_checks = ("ML006", "ML007")
    EXAMPLE_DATASET = {"image_size": (128, 128)}
    INVALID = ["seq(inp(224, 224, 3), conv(32, act='relu'), gap(), dense(10, act='softmax'))  # 128x128 images"]
    VALID = ["seq(inp(128, 128, 3), conv(32, act='relu'), gap(), dense(10, act='softmax'))  # 128x128 images"]

    def check(self, ctx):
        img = ctx.input_image()
        if img is None:
            return
        want = tuple(ctx.dataset.image_size)
        if img[:2] != want and all(img[:2]):
            yield self.finding(f"model input {img[0]}×{img[1]} but the images are {want[0]}×{want[1]}",
                               evidence={"model_input": list(img), "images": list(want)},
                               fix=f"Input(shape=({want[0]}, {want[1]}, {img[2]})), or resize on purpose.")
        ch = ctx.dataset.channels
        if ch and img[2] and ch != img[2] and not (ch == 4 and img[2] == 3):
            yield self.finding(f"model input has {img[2]} channels but the images have {ch}",
                               evidence={"model_channels": img[2], "image_channels": ch},
                               fix="Convert the images (e.g. to RGB) or change the input channels.")


@register
class NoInputScaling(Rule):
    """
    ## What it does
    Notes an image model with no scaling or normalization layer at its input.
    Never more than a note: the data pipeline may scale the images, and a
    PyTorch model always leaves it to the pipeline (`transforms.ToTensor()`,
    `transforms.Normalize`), so for PyTorch the note asks to confirm that.

    ## Why is this bad
    Raw pixels in 0–255 make the first layer's pre-activations 100× larger
    than its initialization expects. Fine if the data pipeline scales the
    images; the model file cannot tell, hence info only.

    ## Fix
    `Rescaling(1/255)` or an adapted `Normalization` layer as the first layer,
    or scale in the input pipeline.
    """

    code = "ML902"
    impact = 1
    name = "no-input-scaling"
    category = "input-shape"
    severity = "info"
    INVALID = ["seq(inp(32, 32, 3), conv(32, act='relu'), gap(), dense(10, act='softmax'))"]
    VALID = ["seq(inp(32, 32, 3), rescale(), conv(32, act='relu'), gap(), dense(10, act='softmax'))"]

    def check(self, ctx):
        img = ctx.input_image()
        if img is None or img[-1] not in (1, 3, 4) or _has_input_scaling(ctx):
            return
        if ctx.graph.framework == "torch":
            yield self.finding("no input scaling in the model: the data pipeline must scale the images",
                               evidence={"input": list(ctx.graph.display_shape((None, *img))[1:])},
                               fix="Confirm that the transforms scale the images: transforms.ToTensor() (to "
                                   "[0, 1]) and transforms.Normalize(mean, std).")
            return
        yield self.finding("no input scaling layer: the model expects already-scaled images",
                           evidence={"input": list(img)},
                           fix="Add Rescaling(1/255) or Normalization as the first layer, or confirm that the "
                               "pipeline scales the images.")
