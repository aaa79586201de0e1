"""Sound Keras reference designs: each factory returns a compiled ``keras.Model`` that
follows a published recipe (keras.applications, keras.io and TensorFlow tutorials).
They must raise no warning unless the manifest says why that warning is right.
"""

from __future__ import annotations

import keras
from keras import layers

from ._keras import compile_model, mnist_cnn_body


# -- keras.applications (weights=None: no download) -----------------------------------------

def mobilenetv2_top():
    model = keras.applications.MobileNetV2(weights=None, include_top=True, input_shape=(96, 96, 3), alpha=0.35,
                                           classes=10)
    return compile_model(model, "sparse_categorical_crossentropy")


def resnet50_notop():
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3), pooling="avg")
    inp = keras.Input(shape=(224, 224, 3))
    x = base(inp)
    out = layers.Dense(100, activation="softmax")(x)
    return compile_model(keras.Model(inp, out),
                         "sparse_categorical_crossentropy",
                         optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True,
                                                                  weight_decay=1e-4))


def efficientnetb0_top():
    model = keras.applications.EfficientNetB0(weights=None, include_top=True, input_shape=(224, 224, 3))
    return compile_model(model, "sparse_categorical_crossentropy")


def transfer_mobilenetv2():
    """keras.io / TensorFlow "Transfer learning and fine-tuning": augmentation, the backbone's own
    preprocess_input, a frozen backbone called with training=False, GAP, dropout, a new head."""
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(128, 128, 3))
    base.trainable = False
    inp = keras.Input(shape=(128, 128, 3))
    x = layers.RandomFlip("horizontal")(inp)
    x = layers.RandomRotation(0.1)(x)
    x = keras.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(13, activation="softmax")(x)
    return compile_model(keras.Model(inp, out), "sparse_categorical_crossentropy")


# -- textbook models ------------------------------------------------------------------------------

def mnist_mlp():
    """TensorFlow 2 quickstart for beginners."""
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10),
    ])
    return compile_model(model, keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def mnist_convnet():
    """keras.io "Simple MNIST convnet"."""
    inp = keras.Input(shape=(28, 28, 1))
    out = layers.Dense(10, activation="softmax")(mnist_cnn_body(inp))
    return compile_model(keras.Model(inp, out), "categorical_crossentropy")


def imdb_bilstm():
    """keras.io "Bidirectional LSTM on IMDB" (vocabulary 10,000)."""
    inp = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(10000, 128)(inp)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(64))(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    return compile_model(keras.Model(inp, out), "binary_crossentropy")


def _double_conv(x, filters):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def unet():
    """A three-level U-Net for binary masks on 64x64 images."""
    inp = keras.Input(shape=(64, 64, 3))
    x = layers.Rescaling(1.0 / 255)(inp)
    skips = []
    for filters in (32, 64, 128):
        x = _double_conv(x, filters)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = _double_conv(x, 256)
    for filters, skip in zip((128, 64, 32), reversed(skips)):
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skip])
        x = _double_conv(x, filters)
    out = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return compile_model(keras.Model(inp, out), "binary_crossentropy")


@keras.saving.register_keras_serializable(package="corpus")
class TokenAndPositionEmbedding(layers.Layer):
    """keras.io "Text classification with Transformer"."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = keras.ops.arange(0, keras.ops.shape(x)[-1], 1)
        return self.token_emb(x) + self.pos_emb(positions)

    def get_config(self):
        return {**super().get_config(), "maxlen": self.maxlen, "vocab_size": self.vocab_size,
                "embed_dim": self.embed_dim}


def transformer_text():
    """keras.io "Text classification with Transformer" (the block written out functionally)."""
    maxlen, vocab, dim = 200, 20000, 32
    inp = keras.Input(shape=(maxlen,), dtype="int32")
    x = TokenAndPositionEmbedding(maxlen, vocab, dim)(inp)
    attn = layers.MultiHeadAttention(num_heads=2, key_dim=dim)(x, x)
    x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(0.1)(attn))
    ffn = layers.Dense(32, activation="relu")(x)
    ffn = layers.Dense(dim)(ffn)
    x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(0.1)(ffn))
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    out = layers.Dense(2, activation="softmax")(x)
    return compile_model(keras.Model(inp, out), "sparse_categorical_crossentropy")


# -- regression, multi-label, reconstruction, text -----------------------------------------------

def regression_bounded_sigmoid():
    """Target scaled to [0, 1] (a proportion): a sigmoid output is the right range."""
    model = keras.Sequential([
        keras.Input(shape=(12,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    return compile_model(model, "mse", metrics=("mae",))


def regression_linear():
    """TensorFlow "Basic regression: predict fuel efficiency" (DNN with a Normalization layer)."""
    norm = layers.Normalization(axis=-1)
    norm.adapt(keras.ops.convert_to_numpy(keras.random.normal((64, 9), seed=0)))
    model = keras.Sequential([keras.Input(shape=(9,)), norm, layers.Dense(64, activation="relu"),
                              layers.Dense(64, activation="relu"), layers.Dense(1)])
    return compile_model(model, "mean_absolute_error", optimizer=keras.optimizers.Adam(0.001), metrics=())


def count_softplus():
    """Counts (bike rentals per hour): a softplus output with the Poisson loss."""
    inp = keras.Input(shape=(16,))
    x = layers.Dense(64, activation="relu")(inp)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(1, activation="softplus")(x)
    return compile_model(keras.Model(inp, out), "poisson", metrics=("mae",))


def multilabel_sigmoid():
    """Multi-label image tagging: 20 independent sigmoids with binary cross-entropy."""
    inp = keras.Input(shape=(64, 64, 3))
    x = layers.Rescaling(1.0 / 255)(inp)
    x = layers.RandomFlip("horizontal")(x)
    for filters in (32, 64, 128, 128):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(20, activation="sigmoid")(x)
    return compile_model(keras.Model(inp, out), "binary_crossentropy", metrics=("binary_accuracy",))


def conv_autoencoder():
    """keras.io "Convolutional autoencoder for image denoising"."""
    inp = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(inp)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same")(x)
    out = layers.Conv2D(1, 3, activation="sigmoid", padding="same")(x)
    return compile_model(keras.Model(inp, out), "binary_crossentropy", metrics=())


def text_embedding_gap():
    """TensorFlow "Basic text classification" (IMDB, bag of embeddings)."""
    model = keras.Sequential([
        keras.Input(shape=(250,), dtype="int64"),
        layers.Embedding(10001, 16),
        layers.Dropout(0.2),
        layers.GlobalAveragePooling1D(),
        layers.Dropout(0.2),
        layers.Dense(1),
    ])
    return compile_model(model, keras.losses.BinaryCrossentropy(from_logits=True),
                         metrics=(keras.metrics.BinaryAccuracy(threshold=0.0),))
