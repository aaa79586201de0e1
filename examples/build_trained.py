"""Train the seed-sized CNN on Fashion-MNIST and save it: the known-truth fixture of the
weight checks (tests/test_weights_known_truth.py) and the trained example of issue 14.

The seed (``build_seed.py``) takes 128x128x3 images of 13 classes; Fashion-MNIST has
28x28x1 images of 10 classes, so this is the seed's architecture at that input size
(same layers and widths: BatchNorm, convs of 32/64/128/64 filters with 3x3 kernels,
max pooling and BatchNorm between them, global average pooling, a softmax Dense) with a
ReLU after each conv and a Rescaling(1/255) in front, so that it trains to a useful accuracy:
168,014 parameters, a ~700 kB file; 4 epochs on 30,000 training images reach 0.894 test
accuracy (0.827, 0.892, 0.894 after epochs 2-4: converged for this model).

Reads the Debian package ``dataset-fashion-mnist`` (IDX files under
/usr/share/datasets/fashion-mnist, or ``$MODELLINT_FASHION_MNIST``); nothing is
downloaded. CPU, about a minute or two on two cores:

    python examples/build_trained.py            # writes examples/fashion_cnn_trained.keras
"""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MODELLINT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
OUT = HERE / "fashion_cnn_trained.keras"
TRAIN_IMAGES = 30000
EPOCHS = 4
SEED = 0


def read_idx(path: Path, count=None):
    """The first ``count`` items of an IDX file (gzipped): two zero bytes, the type byte
    (0x08: uint8 here), the rank, each dimension as a big-endian uint32, the data."""
    import numpy as np

    with gzip.open(path, "rb") as f:
        head = f.read(4)
        if head[:3] != b"\0\0\x08":
            raise ValueError(f"{path}: not a uint8 IDX file")
        dims = [int.from_bytes(f.read(4), "big") for _ in range(head[3])]
        if count is not None:
            dims[0] = min(dims[0], count)
        n = int(np.prod(dims))
        return np.frombuffer(f.read(n), np.uint8).reshape(dims)


def build(input_shape=(28, 28, 1), classes=10):
    import keras
    from keras import layers

    model = keras.Sequential(name="fashion_cnn")
    model.add(keras.Input(shape=input_shape, name="image"))
    model.add(layers.Rescaling(1 / 255, name="rescale"))
    model.add(layers.BatchNormalization(name="batch_normalization_1"))
    filters = (32, 64, 128, 64)
    for i, f in enumerate(filters, start=1):
        model.add(layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv2d_{i}"))
        if i < len(filters):
            model.add(layers.MaxPooling2D(name=f"max_pooling2d_{i}"))
            model.add(layers.BatchNormalization(name=f"batch_normalization_{i + 1}"))
    model.add(layers.GlobalAveragePooling2D(name="global_average_pooling2d_1"))
    model.add(layers.Dense(classes, activation="softmax", name="dense_1"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def load(count=TRAIN_IMAGES):
    x = read_idx(DATA / "train-images-idx3-ubyte.gz", count)[..., None]
    y = read_idx(DATA / "train-labels-idx1-ubyte.gz", count)
    xt = read_idx(DATA / "t10k-images-idx3-ubyte.gz", 5000)[..., None]
    yt = read_idx(DATA / "t10k-labels-idx1-ubyte.gz", 5000)
    return (x.astype("float32"), y.astype("int64")), (xt.astype("float32"), yt.astype("int64"))


def main(out: Path = OUT) -> int:
    import keras

    keras.utils.set_random_seed(SEED)
    (x, y), (xt, yt) = load()
    model = build()
    history = model.fit(x, y, batch_size=128, epochs=EPOCHS, validation_data=(xt, yt), verbose=2)
    # Saved from a fresh copy with the trained weights: the optimizer's unbuilt state adds no
    # Adam moments to the file (a third of the size).
    saved = build()
    saved.set_weights(model.get_weights())
    saved.save(out)
    acc = history.history["val_accuracy"]
    print(f"wrote {out}: {model.count_params():,} params, {out.stat().st_size:,} bytes; "
          f"test accuracy per epoch {[round(a, 4) for a in acc]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
