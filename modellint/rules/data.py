"""ML00x: checks of the training data, made while the probes load it.

The loader (:mod:`modellint.probes.data`) measures; these rules report. One
table, one class per check, so each has its page, code and suppression.
"""

from __future__ import annotations

from .base import Rule, register

_MODEL = "seq(inp(32, 32, 3), conv(16, act='relu'), gap(), dense(3, act='softmax'))"

# code: (name, severity, what it does, why is this bad, fix)
DATA_RULES = {
    "ML001": ("class-imbalance", "warning",
              "Flags a training set whose largest class has more than 3x the images of the smallest.",
              "The model learns the majority class first and accuracy hides the minority classes' errors.",
              "Collect more minority images, or re-weight the loss / resample batches; report per-class metrics."),
    "ML002": ("unreadable-images", "warning",
              "Lists image files that cannot be decoded; they are skipped, never fatal.",
              "Broken files silently shrink the dataset or crash a training job hours in.",
              "Delete or re-export the listed files."),
    "ML003": ("duplicates-within-class", "info",
              "Finds identical images repeated inside a class.",
              "Duplicates weight some examples more than others and inflate validation scores when they "
              "land on both sides of a split.",
              "De-duplicate the class folders."),
    "ML004": ("duplicates-across-classes", "error",
              "Finds identical images filed under different labels.",
              "The same input with two labels is label noise the model cannot fit: at least one label is wrong.",
              "Fix the labels of the listed files."),
    "ML005": ("duplicates-across-split", "warning",
              "Finds identical images in both the training and the validation split.",
              "Validation accuracy then measures memorisation, not generalisation.",
              "De-duplicate before splitting."),
    "ML006": ("image-size-mismatch", "warning",
              "Compares the images' sizes and aspect ratios with the model input.",
              "Resizing far from the native size loses detail or distorts shapes; a different aspect ratio "
              "stretches every object.",
              "Build the model for the data's size, or crop/pad to the model's aspect ratio."),
    "ML007": ("channel-mismatch", "warning",
              "Flags grey images for an RGB model, or colour images for a grey one.",
              "The conversion is implicit and easy to get wrong between training and serving.",
              "Convert the images explicitly, or change the model's input channels."),
    "ML008": ("pixel-statistics", "info",
              "Reports the pixel range and per-channel mean and standard deviation of the data.",
              "A model without input scaling sees raw 0-255 values, 100x what its initialisation expects.",
              "Normalise inputs (Rescaling/Normalization layer or transforms.Normalize) with these statistics."),
}


def _make(code, name, severity, what, why, fix):
    def check(self, ctx):
        m = ctx.probe("data_checks")
        for c in (m or {}).get("checks", []):
            if c.get("code") == code:
                f = self.finding(c.get("message", name), evidence=c.get("evidence") or {},
                                 explanation=c.get("explanation") or why, fix=c.get("fix") or fix,
                                 severity=c.get("severity") or severity)
                if c.get("files"):
                    f.evidence = dict(f.evidence, files=list(c["files"])[:20])
                yield f

    example = {"code": code, "message": f"{name} (example)", "evidence": {}}
    attrs = {
        "__doc__": f"\n## What it does\n{what}\n\n## Why is this bad\n{why}\n\n## Fix\n{fix}\n",
        "code": code, "name": name, "category": "data", "severity": severity, "needs": ("probes",),
        "check": check,
        "INVALID": [(_MODEL, {"data_checks": {"status": "ok", "metrics": {"checks": [example]}}})],
        "VALID": [(_MODEL, {"data_checks": {"status": "ok", "metrics": {"checks": []}}})],
    }
    cls = type("".join(part.capitalize() for part in name.split("-")), (Rule,), attrs)
    cls.__module__ = __name__
    return register(cls)


for _code, _spec in DATA_RULES.items():
    globals()[_spec[0].replace("-", "_")] = _make(_code, *_spec)
