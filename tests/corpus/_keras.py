"""Small helpers shared by the Keras corpus modules (imports Keras)."""

from __future__ import annotations

import keras
from keras import layers


def compile_model(model, loss, optimizer=None, metrics=("accuracy",)):
    """``model.compile`` as tutorials write it: Adam at its default rate unless stated."""
    model.compile(optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(1e-3), loss=loss,
                  metrics=list(metrics))
    return model


def mnist_cnn_body(x):
    """keras.io "Simple MNIST convnet": two conv+pool stages, Flatten, Dropout (functional)."""
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    return layers.Dropout(0.5)(x)
