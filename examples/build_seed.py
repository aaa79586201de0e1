"""Build the seed model of ../shared/seed/question.txt and save it as .keras and .h5.

The asker's model.summary() shows a Keras CNN for 13 classes on 128x128x3 inputs
with 168,793 parameters (168,339 trainable, 454 non-trainable). Conv2D with
padding="same" and Keras' default (linear) activation reproduces every number.

Run with a Keras-equipped Python (``make examples``):

    python examples/build_seed.py   # writes examples/seed_cnn{,_fixed}.{keras,h5}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent


def build_seed():
    import keras
    from keras import layers

    model = keras.Sequential(name="seed_cnn")
    model.add(keras.Input(shape=(128, 128, 3), name="input_1"))
    model.add(layers.BatchNormalization(name="batch_normalization_1"))
    filters = (32, 64, 128, 64)
    for i, f in enumerate(filters, start=1):
        model.add(layers.Conv2D(f, 3, padding="same", name=f"conv2d_{i}"))
        if i < len(filters):
            model.add(layers.MaxPooling2D(name=f"max_pooling2d_{i}"))
            model.add(layers.BatchNormalization(name=f"batch_normalization_{i + 1}"))
    model.add(layers.GlobalAveragePooling2D(name="global_average_pooling2d_1"))
    model.add(layers.Dense(13, activation="softmax", name="dense_1"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def build_seed_fixed():
    """The seed with modellint's advice applied (see README): fixed input scaling
    instead of BatchNorm on raw pixels, augmentation, ReLU after every conv, no conv
    bias before BatchNorm, one more stage and two convs per stage so the receptive
    field (140 px) covers the 128 px input, no channel drop before the head, dropout
    before the classifier."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(128, 128, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.RandomFlip("horizontal", name="flip")(x)
    x = layers.RandomRotation(0.1, name="rotate")(x)
    x = layers.RandomZoom(0.1, name="zoom")(x)
    filters = (16, 32, 64, 128, 128)
    for stage, f in enumerate(filters, start=1):
        for i in (1, 2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                              name=f"stage{stage}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"stage{stage}_bn{i}")(x)
            x = layers.Activation("relu", name=f"stage{stage}_relu{i}")(x)
        if stage < len(filters):
            x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(13, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs, name="seed_cnn_fixed")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def main(out_dir: Path = HERE) -> int:
    keras_path, h5_path = out_dir / "seed_cnn.keras", out_dir / "seed_cnn.h5"
    # Keras 3 strips the optimizer from the in-memory compile config when saving
    # to .h5, so save .keras first and build a fresh model for the .h5.
    build_seed().save(keras_path)
    model = build_seed()
    model.save(h5_path)
    print(f"wrote {keras_path} and {h5_path}: {model.count_params():,} params")
    fixed_keras, fixed_h5 = out_dir / "seed_cnn_fixed.keras", out_dir / "seed_cnn_fixed.h5"
    build_seed_fixed().save(fixed_keras)
    fixed = build_seed_fixed()
    fixed.save(fixed_h5)
    print(f"wrote {fixed_keras} and {fixed_h5}: {fixed.count_params():,} params")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
