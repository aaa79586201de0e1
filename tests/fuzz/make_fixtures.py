"""Write the fuzz suite's tiny base model files to tests/fixtures/fuzz/ (run once; files are committed).

    .venv/bin/python tests/fuzz/make_fixtures.py

The byte-mutation family mutates these (besides examples/seed_cnn.{h5,keras}): a small Keras
functional model (.keras, legacy .h5, to_json() .json) and one tiny PyTorch CNN saved every way
modellint reads or refuses (torch.export .pt2, TorchScript, ONNX, a zip state_dict, a pickled
whole module, a legacy non-zip state_dict). Shipping them keeps the corpus byte-identical across
sessions (torch.save writes a random serialization_id) and saves the ~5 s of torch.export and ONNX
export per run. Each file is well under 100 KB. Regenerate after a torch or Keras upgrade that
changes the formats (test_fuzz checks that every base file still reads cleanly).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
OUT = Path(__file__).resolve().parent.parent / "fixtures" / "fuzz"


def tiny_torch():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(6, 3)).eval()
    return model, torch.randn(1, 3, 16, 16)


def write_torch(out: Path) -> None:
    import torch

    model, x = tiny_torch()
    torch.save(model.state_dict(), out / "tiny_state_dict.pt")
    torch.save(model, out / "tiny_module.pt")
    torch.save(model.state_dict(), out / "tiny_state_dict_legacy.pt", _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(model), out / "tiny_torchscript.pt")
    torch.export.save(torch.export.export(model, (x,)), out / "tiny.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(out / "tiny.onnx"), dynamo=True, optimize=False,
                          external_data=False, verbose=False)


def write_keras(out: Path) -> None:
    import keras
    from keras import layers

    def build():
        inp = keras.Input((16, 16, 3), name="image")
        x = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inp)
        a = layers.Conv2D(4, 1, name="branch_a")(x)
        b = layers.DepthwiseConv2D(3, padding="same", name="branch_b")(x)
        x = layers.Add(name="add")([a, b])
        x = layers.BatchNormalization(name="bn")(x)
        c = layers.MaxPooling2D(name="pool")(x)
        c = layers.Conv2D(6, 3, strides=2, padding="same", name="down")(c)
        c = layers.GlobalAveragePooling2D(name="gap_c")(c)
        d = layers.GlobalMaxPooling2D(name="gmp")(x)
        x = layers.Concatenate(name="concat")([c, d])
        x = layers.Dropout(0.2, name="drop")(x)
        out_ = layers.Dense(3, activation="softmax", name="classes")(x)
        model = keras.Model(inp, out_, name="fuzz_functional")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    build().save(out / "func.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build().save(out / "func.h5")
    (out / "func.json").write_text(build().to_json())


def main(argv=None) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    which = set(argv or sys.argv[1:]) or {"torch", "keras"}
    if "torch" in which:
        write_torch(OUT)
    if "keras" in which:
        write_keras(OUT)
    for p in sorted(OUT.iterdir()):
        print(f"{p.name:32} {p.stat().st_size:>8} bytes")
        assert p.stat().st_size < 100_000, p
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
