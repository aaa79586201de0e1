"""Keras faults at the output head and in the loss (buggy/fixed twins).

Each pair is two factories, ``<name>_buggy`` and ``<name>_fixed``, returning a compiled
``keras.Model`` written the way such models are posted on Q&A sites; the twins differ
only in the fault. Labels live in :mod:`corpus.manifest`.
"""

from __future__ import annotations

import keras
from keras import layers

from ._keras import compile_model, mnist_cnn_body


# -- softmax on one unit: binary classification (tabular) ----------------------------------

def _binary_tabular(head_activation):
    model = keras.Sequential([
        keras.Input(shape=(30,)),
        layers.Dense(32, activation="relu"),
        layers.Dense(16, activation="relu"),
        layers.Dense(1, activation=head_activation),
    ])
    return compile_model(model, "binary_crossentropy")


def softmax_one_unit_binary_buggy():
    return _binary_tabular("softmax")


def softmax_one_unit_binary_fixed():
    return _binary_tabular("sigmoid")


# -- softmax on one unit: a regression (Boston-housing style, functional API) --------------

def _housing(head_activation):
    inp = keras.Input(shape=(13,), name="features")
    x = layers.Dense(64, activation="relu")(inp)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(1, activation=head_activation, name="price")(x)
    return compile_model(keras.Model(inp, out), "mse", metrics=("mae",))


def softmax_one_unit_regression_buggy():
    return _housing("softmax")


def softmax_one_unit_regression_fixed():
    return _housing(None)


# -- sigmoid + categorical cross-entropy on single-label CIFAR-10 --------------------------

def _cifar_cnn(head_activation, loss="categorical_crossentropy"):
    model = keras.Sequential([
        keras.Input(shape=(32, 32, 3)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.3),
        layers.Dense(10, activation=head_activation),
    ])
    return compile_model(model, loss)


def sigmoid_cce_single_label_buggy():
    return _cifar_cnn("sigmoid")


def sigmoid_cce_single_label_fixed():
    return _cifar_cnn("softmax")


# -- ReLU output into sparse categorical cross-entropy (loss goes NaN) ---------------------

def _mnist_mlp(head_activation, loss="sparse_categorical_crossentropy"):
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation=head_activation),
    ])
    return compile_model(model, loss)


def relu_output_ce_buggy():
    return _mnist_mlp("relu")


def relu_output_ce_fixed():
    return _mnist_mlp("softmax")


# -- linear output, cross-entropy string loss (from_logits=False by default) ---------------

def _flowers(loss):
    # the TensorFlow image-classification tutorial's model (augmentation, rescaling, dropout)
    model = keras.Sequential([
        keras.Input(shape=(96, 96, 3)),
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.1),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.2),
        layers.Dense(128, activation="relu"),
        layers.Dense(5),
    ])
    return compile_model(model, loss)


def linear_output_ce_no_logits_buggy():
    return _flowers("sparse_categorical_crossentropy")


def linear_output_ce_no_logits_fixed():
    return _flowers(keras.losses.SparseCategoricalCrossentropy(from_logits=True))


# -- softmax output + from_logits=True: softmax applied twice ------------------------------

def _fashion(loss):
    inp = keras.Input(shape=(28, 28, 1))
    x = mnist_cnn_body(inp)
    out = layers.Dense(10, activation="softmax")(x)
    return compile_model(keras.Model(inp, out), loss)


def from_logits_double_softmax_buggy():
    return _fashion(keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def from_logits_double_softmax_fixed():
    return _fashion(keras.losses.SparseCategoricalCrossentropy())


# -- MSE on a softmax classifier (iris, one-hot labels) ------------------------------------

def _iris(loss):
    model = keras.Sequential([
        keras.Input(shape=(4,)),
        layers.Dense(16, activation="relu"),
        layers.Dense(16, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])
    return compile_model(model, loss)


def mse_on_softmax_buggy():
    return _iris("mean_squared_error")


def mse_on_softmax_fixed():
    return _iris("categorical_crossentropy")


# -- binary cross-entropy on a single-label 4-class softmax (text) ------------------------

def _news(loss):
    model = keras.Sequential([
        keras.Input(shape=(120,), dtype="int32"),
        layers.Embedding(20000, 64),
        layers.GlobalAveragePooling1D(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(4, activation="softmax"),
    ])
    return compile_model(model, loss)


def bce_on_multiclass_softmax_buggy():
    return _news("binary_crossentropy")


def bce_on_multiclass_softmax_fixed():
    return _news("categorical_crossentropy")


# -- categorical cross-entropy on one sigmoid unit (loss is always 0) ----------------------

def _spam(loss):
    inp = keras.Input(shape=(57,))
    x = layers.Dense(64, activation="relu")(inp)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(32, activation="relu")(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    return compile_model(keras.Model(inp, out), loss)


def cce_on_one_sigmoid_buggy():
    return _spam("categorical_crossentropy")


def cce_on_one_sigmoid_fixed():
    return _spam("binary_crossentropy")


# -- wrong number of output units (10 for a 13-class dataset) ------------------------------

def _thirteen(units):
    model = keras.Sequential([
        keras.Input(shape=(64, 64, 3)),
        layers.Rescaling(1.0 / 255),
        layers.RandomFlip("horizontal"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(units, activation="softmax"),
    ])
    return compile_model(model, "sparse_categorical_crossentropy")


def wrong_units_buggy():
    return _thirteen(10)


def wrong_units_fixed():
    return _thirteen(13)


# -- Dense on a feature map, no Flatten: the output keeps the spatial axes -----------------

def dense_on_feature_map_buggy():
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Dense(10, activation="softmax"),  # (None, 5, 5, 10)
    ])
    return compile_model(model, "sparse_categorical_crossentropy")


def dense_on_feature_map_fixed():
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    return compile_model(model, "sparse_categorical_crossentropy")


# -- Dense on a sequence of embeddings, no pooling: one prediction per token --------------

def _imdb(pool):
    model = keras.Sequential([keras.Input(shape=(200,), dtype="int32"), layers.Embedding(10000, 16)]
                             + ([layers.GlobalAveragePooling1D()] if pool else [])
                             + [layers.Dense(16, activation="relu"), layers.Dense(1, activation="sigmoid")])
    return compile_model(model, "binary_crossentropy")


def dense_on_sequence_buggy():
    return _imdb(pool=False)  # (None, 200, 1)


def dense_on_sequence_fixed():
    return _imdb(pool=True)


# -- LSTM(return_sequences=True) into a sequence-to-one regression head --------------------

def _forecast(return_sequences):
    inp = keras.Input(shape=(45, 1))
    x = layers.LSTM(50, return_sequences=return_sequences)(inp)
    out = layers.Dense(1)(x)
    return compile_model(keras.Model(inp, out), "mse", metrics=("mae",))


def lstm_return_sequences_buggy():
    return _forecast(True)  # (None, 45, 1)


def lstm_return_sequences_fixed():
    return _forecast(False)


# -- softmax on a multi-output regression (coordinates) ------------------------------------

def _coords(head_activation):
    inp = keras.Input(shape=(8,))
    x = layers.Dense(64, activation="relu")(inp)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(2, activation=head_activation, name="lat_lon")(x)
    return compile_model(keras.Model(inp, out), "mean_squared_error", metrics=("mae",))


def softmax_regression_buggy():
    return _coords("softmax")


def softmax_regression_fixed():
    return _coords(None)


# -- sigmoid on a regression whose target is in thousands (visible only in the data) -------

def _prices(head_activation):
    model = keras.Sequential([
        keras.Input(shape=(13,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(1, activation=head_activation),
    ])
    return compile_model(model, "mse", metrics=("mae",))


def sigmoid_unbounded_target_buggy():
    return _prices("sigmoid")


def sigmoid_unbounded_target_fixed():
    return _prices(None)


# -- ReLU at a regression output whose (standardised) target is negative half the time -----

def _standardised(head_activation):
    inp = keras.Input(shape=(20,))
    x = layers.Dense(128, activation="relu")(inp)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(1, activation=head_activation)(x)
    return compile_model(keras.Model(inp, out), "mse")


def relu_output_regression_buggy():
    return _standardised("relu")


def relu_output_regression_fixed():
    return _standardised(None)


# -- ReLU layer then a separate softmax Activation: ReLU clips the logits ------------------

def _reuters(double):
    model = keras.Sequential([
        keras.Input(shape=(10000,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(46, activation="relu" if double else None),
        layers.Activation("softmax"),
    ])
    return compile_model(model, "categorical_crossentropy")


def relu_before_softmax_buggy():
    return _reuters(True)


def relu_before_softmax_fixed():
    return _reuters(False)
