"""Every Keras layer type the op table knows, in small models, against Keras itself.

For each case: total / trainable / non-trainable parameters and every layer's
output shape(s) must equal Keras' own, for the live model, the ``.keras``
archive and the legacy ``.h5`` file.
"""

import warnings

import numpy as np
import pytest

from conftest import keras_only
from modellint import load_graph

pytestmark = [keras_only, pytest.mark.keras]

CASES = []  # pytest.param(builder, id=...)


SAVED = ("keras", "h5")


def case(name, *marks, saved=SAVED):
    """Register a builder: it returns a model, or (model, {layer: true output shapes})
    where Keras' own symbolic shapes are wrong."""

    def register(fn):
        CASES.append(pytest.param(fn, saved, id=name, marks=list(marks)))
        return fn

    return register


def seq(input_shape, *layer_list, dtype="float32"):
    import keras

    return keras.Sequential([keras.Input(input_shape, dtype=dtype), *layer_list])


def fn_model(inputs, outputs):
    import keras

    return keras.Model(inputs, outputs)


def _L():
    from keras import layers

    return layers


# ---------------------------------------------------------------------------
# the zoo
# ---------------------------------------------------------------------------

def _simple(name, input_shape, make, **kw):
    """A one-layer Sequential case: ``make(layers)`` returns the layer(s)."""

    @case(name, *kw.pop("marks", ()), saved=kw.pop("saved", SAVED))
    def build():
        made = make(_L())
        return seq(input_shape, *(made if isinstance(made, (list, tuple)) else [made]), **kw)


# Input / Dense
_simple("input_none_dims", (None, 6), lambda L: L.Dense(3))
_simple("dense_2d", (8,), lambda L: L.Dense(4))
_simple("dense_relu_nobias", (8,), lambda L: L.Dense(4, activation="relu", use_bias=False))
_simple("dense_4d", (3, 5, 6), lambda L: L.Dense(7, activation="tanh"))

# convolutions
_simple("conv1d_valid", (20, 3), lambda L: L.Conv1D(4, 3))
_simple("conv1d_same_stride", (21, 3), lambda L: L.Conv1D(4, 3, strides=2, padding="same"))
_simple("conv1d_valid_stride_dilated", (21, 3), lambda L: [L.Conv1D(4, 3, dilation_rate=3), L.Conv1D(2, 4, strides=3)])
_simple("conv1d_causal_dilated", (20, 3), lambda L: L.Conv1D(4, 3, padding="causal", dilation_rate=2))
_simple("conv1d_groups_nobias", (20, 4), lambda L: L.Conv1D(6, 3, groups=2, use_bias=False))
_simple("conv1d_channels_first", (3, 20), lambda L: L.Conv1D(4, 3, strides=2, data_format="channels_first"))
_simple("conv2d_valid", (9, 9, 3), lambda L: L.Conv2D(4, 3, activation="relu"))
_simple("conv2d_same_strides", (9, 10, 3), lambda L: L.Conv2D(4, (3, 5), strides=(2, 3), padding="same"))
_simple("conv2d_valid_strides", (9, 10, 3), lambda L: L.Conv2D(4, (3, 2), strides=(2, 3)))
_simple("conv2d_dilated", (12, 12, 3), lambda L: L.Conv2D(4, 3, dilation_rate=(2, 3)))
_simple("conv2d_groups", (8, 8, 6), lambda L: L.Conv2D(9, 3, groups=3, use_bias=False))
_simple("conv2d_channels_first", (3, 11, 9), lambda L: L.Conv2D(5, 3, strides=2, padding="same", data_format="channels_first"))
_simple("conv3d_valid", (6, 7, 5, 2), lambda L: L.Conv3D(3, (3, 2, 1)))
_simple("conv3d_same_strides", (6, 7, 5, 2), lambda L: L.Conv3D(3, 3, strides=2, padding="same", use_bias=False))
_simple("conv3d_channels_first", (2, 6, 7, 5), lambda L: L.Conv3D(3, 2, data_format="channels_first"))
_simple("depthwise1d", (12, 3), lambda L: L.DepthwiseConv1D(3, strides=2, depth_multiplier=2))
_simple("depthwise_valid", (8, 8, 3), lambda L: L.DepthwiseConv2D(3))
_simple("depthwise_same_stride_dm", (9, 9, 3), lambda L: L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2))
_simple("depthwise_nobias_dilated", (10, 10, 4), lambda L: L.DepthwiseConv2D((3, 2), dilation_rate=2, use_bias=False))
_simple("depthwise_channels_first", (3, 8, 8), lambda L: L.DepthwiseConv2D(3, depth_multiplier=2, data_format="channels_first"))
_simple("separable1d_valid", (16, 3), lambda L: L.SeparableConv1D(5, 3))
_simple("separable1d_same_dm_stride", (17, 3), lambda L: L.SeparableConv1D(5, 3, strides=2, padding="same", depth_multiplier=2))
_simple("separable2d_valid", (8, 8, 3), lambda L: L.SeparableConv2D(6, 3, activation="relu"))
_simple("separable2d_same_dm_nobias", (9, 9, 4), lambda L: L.SeparableConv2D(6, 3, strides=2, padding="same", depth_multiplier=3, use_bias=False))
_simple("separable2d_dilated", (12, 12, 2), lambda L: L.SeparableConv2D(4, 3, dilation_rate=2))
_simple("separable2d_channels_first", (3, 8, 8), lambda L: L.SeparableConv2D(4, 3, depth_multiplier=2, data_format="channels_first"))
_simple("conv1d_transpose_valid", (7, 3), lambda L: L.Conv1DTranspose(4, 3))
_simple("conv1d_transpose_valid_stride", (7, 3), lambda L: L.Conv1DTranspose(4, 3, strides=2))
_simple("conv1d_transpose_same_stride", (7, 3), lambda L: L.Conv1DTranspose(4, 4, strides=2, padding="same"))
_simple("conv1d_transpose_output_padding", (7, 3), lambda L: L.Conv1DTranspose(4, 3, strides=2, output_padding=1))
_simple("conv1d_transpose_kernel_lt_stride", (7, 3), lambda L: L.Conv1DTranspose(4, 2, strides=3))
_simple("conv1d_transpose_dilated", (7, 3), lambda L: L.Conv1DTranspose(4, 3, dilation_rate=2))
_simple("conv2d_transpose_valid", (5, 6, 3), lambda L: L.Conv2DTranspose(4, 3, strides=2, use_bias=False))
_simple("conv2d_transpose_same", (5, 6, 3), lambda L: L.Conv2DTranspose(4, (3, 4), strides=(2, 3), padding="same"))
_simple("conv2d_transpose_output_padding", (5, 6, 3), lambda L: L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=(0, 1)))
_simple("conv2d_transpose_channels_first", (3, 5, 6), lambda L: L.Conv2DTranspose(4, 3, strides=2, data_format="channels_first"))
_simple("conv3d_transpose_valid", (3, 4, 2, 2), lambda L: L.Conv3DTranspose(3, 2, strides=2))
_simple("conv3d_transpose_same", (3, 4, 2, 2), lambda L: L.Conv3DTranspose(3, 3, strides=(1, 2, 3), padding="same"))

# normalisation
_simple("batchnorm_4d", (5, 5, 3), lambda L: L.BatchNormalization())
_simple("batchnorm_2d_no_center", (7,), lambda L: L.BatchNormalization(center=False))
_simple("batchnorm_no_scale", (4, 6), lambda L: L.BatchNormalization(scale=False))
_simple("batchnorm_frozen", (5, 5, 3), lambda L: [L.Conv2D(4, 3), L.BatchNormalization(trainable=False)])
_simple("batchnorm_axis1_channels_first", (3, 6, 6), lambda L: [L.Conv2D(4, 3, data_format="channels_first"), L.BatchNormalization(axis=1)])
_simple("layernorm_last", (4, 6), lambda L: L.LayerNormalization())
_simple("layernorm_multi_axis", (3, 4, 5), lambda L: L.LayerNormalization(axis=[-2, -1]))
_simple("layernorm_axes_1_3", (3, 4, 5), lambda L: L.LayerNormalization(axis=[1, 3], center=False))
_simple("layernorm_rms", (4, 6), lambda L: L.LayerNormalization(rms_scaling=True),
        marks=[pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")])
_simple("groupnorm", (5, 5, 6), lambda L: L.GroupNormalization(groups=3))
_simple("groupnorm_no_center", (10, 4), lambda L: L.GroupNormalization(groups=2, center=False))
_simple("groupnorm_channels_first", (6, 5, 5), lambda L: [L.Conv2D(4, 1, data_format="channels_first"), L.GroupNormalization(2, axis=1)])
_simple("unitnorm", (6,), lambda L: L.UnitNormalization())
_simple("unitnorm_axes", (3, 6), lambda L: L.UnitNormalization(axis=[1, 2]))

# pooling
_simple("maxpool1d", (11, 3), lambda L: L.MaxPooling1D())
_simple("maxpool1d_same_stride1", (11, 3), lambda L: L.MaxPooling1D(3, strides=1, padding="same"))
_simple("maxpool2d_valid", (9, 10, 3), lambda L: L.MaxPooling2D((3, 2), strides=2))
_simple("maxpool2d_same", (9, 10, 3), lambda L: L.MaxPooling2D(3, padding="same"))
_simple("maxpool2d_channels_first", (3, 9, 10), lambda L: L.MaxPooling2D(2, data_format="channels_first"))
_simple("maxpool3d", (5, 6, 7, 2), lambda L: L.MaxPooling3D((2, 3, 2), strides=(1, 2, 2), padding="same"))
_simple("avgpool1d", (11, 3), lambda L: L.AveragePooling1D(4, strides=3))
_simple("avgpool2d_same_strides", (9, 10, 3), lambda L: L.AveragePooling2D(3, strides=(2, 3), padding="same"))
_simple("avgpool2d_channels_first", (3, 9, 10), lambda L: L.AveragePooling2D((2, 3), data_format="channels_first"))
_simple("avgpool3d", (5, 6, 7, 2), lambda L: L.AveragePooling3D(2))
_simple("gap1d", (11, 3), lambda L: L.GlobalAveragePooling1D())
_simple("gmp1d_keepdims", (11, 3), lambda L: L.GlobalMaxPooling1D(keepdims=True))
_simple("gap2d_keepdims", (5, 6, 3), lambda L: L.GlobalAveragePooling2D(keepdims=True))
_simple("gmp2d", (5, 6, 3), lambda L: L.GlobalMaxPooling2D())
_simple("gap2d_channels_first", (3, 5, 6), lambda L: L.GlobalAveragePooling2D(data_format="channels_first", keepdims=True))
_simple("gap3d", (3, 4, 5, 2), lambda L: L.GlobalAveragePooling3D())
_simple("gmp3d_keepdims", (3, 4, 5, 2), lambda L: L.GlobalMaxPooling3D(keepdims=True))

# reshaping
_simple("flatten", (3, 4, 5), lambda L: [L.Flatten(), L.Dense(2)])
_simple("flatten_channels_first", (3, 4, 5), lambda L: [L.Conv2D(2, 1, data_format="channels_first"), L.Flatten(), L.Dense(2)])
_simple("reshape_minus1", (4, 6), lambda L: [L.Reshape((-1, 3)), L.Dense(2)])
_simple("reshape_4d", (24,), lambda L: [L.Reshape((2, 3, 4)), L.Conv2D(2, 1)])
_simple("permute_2d", (4, 6), lambda L: [L.Permute((2, 1)), L.Dense(3)])
_simple("permute_3d", (3, 4, 5), lambda L: [L.Permute((3, 1, 2)), L.Dense(2)])
_simple("repeat_vector", (5,), lambda L: [L.RepeatVector(3), L.Dense(2)])

# regularisation / noise
_simple("dropout", (6,), lambda L: [L.Dropout(0.5), L.Dense(2)])
_simple("spatial_dropout1d", (8, 3), lambda L: L.SpatialDropout1D(0.2))
_simple("spatial_dropout2d", (4, 4, 3), lambda L: L.SpatialDropout2D(0.2))
_simple("spatial_dropout3d_cf", (2, 3, 4, 4), lambda L: [L.SpatialDropout3D(0.2, data_format="channels_first"), L.Conv3D(2, 1, data_format="channels_first")])
_simple("gaussian_dropout_noise_alpha", (6,), lambda L: [L.GaussianDropout(0.2), L.GaussianNoise(0.1), L.AlphaDropout(0.1)])

# activations
_simple("activation", (6,), lambda L: [L.Activation("relu"), L.Activation("softmax")])
_simple("relu6_negative_slope", (6,), lambda L: [L.ReLU(max_value=6.0), L.ReLU(negative_slope=0.1)])
_simple("leaky_relu_elu_softmax", (4, 6), lambda L: [L.LeakyReLU(0.2), L.ELU(), L.Softmax(axis=1)])
_simple("prelu", (4, 5, 3), lambda L: L.PReLU())
_simple("prelu_shared_axes", (4, 5, 3), lambda L: L.PReLU(shared_axes=[1, 2]))
_simple("prelu_2d", (7,), lambda L: L.PReLU())
_simple("prelu_channels_first_shared", (3, 4, 5), lambda L: [L.Conv2D(2, 1, data_format="channels_first"), L.PReLU(shared_axes=[2, 3])])


# merges
def _merge_case(name, cls, shapes=((4, 5), (4, 5)), **kw):
    @case(name)
    def build():
        import keras

        ins = [keras.Input(s) for s in shapes]
        out = getattr(_L(), cls)(**kw)(ins)
        return fn_model(ins, out)


for _cls in ("Add", "Multiply", "Average", "Subtract", "Maximum", "Minimum"):
    _merge_case(_cls.lower(), _cls)
_merge_case("add_three", "Add", shapes=((6,), (6,), (6,)))
_merge_case("add_broadcast", "Add", shapes=((4, 5), (1, 5)))
_merge_case("concat_last", "Concatenate", shapes=((4, 5, 2), (4, 5, 3)))
_merge_case("concat_axis1", "Concatenate", shapes=((4, 5, 2), (3, 5, 2)), axis=1)
_merge_case("concat_axis2", "Concatenate", shapes=((4, 5, 2), (4, 1, 2)), axis=2)
_merge_case("concat_2d", "Concatenate", shapes=((3,), (4,), (5,)))
_merge_case("dot_vectors", "Dot", shapes=((5,), (5,)), axes=1)
_merge_case("dot_normalize", "Dot", shapes=((5,), (5,)), axes=-1, normalize=True)
_merge_case("dot_3d", "Dot", shapes=((3, 4), (5, 3)), axes=(1, 2))
_merge_case("dot_3d_last", "Dot", shapes=((3, 4), (5, 4)), axes=2)


@case("concat_channels_first")
def _concat_cf():
    import keras

    L = _L()
    x = keras.Input((3, 6, 6))
    a = L.Conv2D(2, 1, data_format="channels_first")(x)
    out = L.Concatenate(axis=1)([a, x])
    return fn_model(x, L.Conv2D(4, 3, data_format="channels_first")(out))


# padding, cropping, upsampling
_simple("zeropad1d_int", (6, 2), lambda L: L.ZeroPadding1D(2))
_simple("zeropad1d_tuple", (6, 2), lambda L: L.ZeroPadding1D((1, 3)))
_simple("zeropad2d_int", (4, 5, 2), lambda L: L.ZeroPadding2D(1))
_simple("zeropad2d_pairs", (4, 5, 2), lambda L: L.ZeroPadding2D(((1, 2), (3, 0))))
_simple("zeropad2d_sym_tuple", (4, 5, 2), lambda L: L.ZeroPadding2D((2, 1)))
_simple("zeropad2d_channels_first", (2, 4, 5), lambda L: L.ZeroPadding2D(((0, 1), (2, 3)), data_format="channels_first"))
_simple("zeropad3d", (3, 4, 5, 2), lambda L: L.ZeroPadding3D(((1, 0), (0, 2), (1, 1))))
_simple("zeropad3d_int", (3, 4, 5, 2), lambda L: L.ZeroPadding3D(1))
_simple("crop1d", (8, 2), lambda L: L.Cropping1D((1, 2)))
_simple("crop1d_int", (8, 2), lambda L: L.Cropping1D(2))
_simple("crop2d_pairs", (8, 9, 2), lambda L: L.Cropping2D(((1, 2), (0, 3))))
_simple("crop2d_sym", (8, 9, 2), lambda L: L.Cropping2D((2, 1)))
_simple("crop2d_channels_first", (2, 8, 9), lambda L: L.Cropping2D(((1, 0), (2, 2)), data_format="channels_first"))
_simple("crop3d", (5, 6, 7, 2), lambda L: L.Cropping3D(((1, 1), (0, 2), (3, 0))))
_simple("upsample1d", (5, 2), lambda L: L.UpSampling1D(3))
_simple("upsample2d", (4, 5, 2), lambda L: L.UpSampling2D((2, 3)))
_simple("upsample2d_bilinear_cf", (2, 4, 5), lambda L: L.UpSampling2D(2, interpolation="bilinear", data_format="channels_first"))
_simple("upsample3d", (2, 3, 4, 2), lambda L: L.UpSampling3D((1, 2, 3)))

# preprocessing
_simple("rescaling", (4, 4, 3), lambda L: L.Rescaling(1 / 255.0, offset=-1.0))
_simple("normalization_given", (5,), lambda L: L.Normalization(mean=[0.5] * 5, variance=[2.0] * 5))
_simple("normalization_given_scalar", (4, 4, 3), lambda L: L.Normalization(mean=0.5, variance=2.0))
_simple("resizing", (10, 12, 3), lambda L: L.Resizing(8, 6))
_simple("resizing_channels_first", (3, 10, 12), lambda L: L.Resizing(5, 7, data_format="channels_first"))
_simple("center_crop", (10, 12, 3), lambda L: L.CenterCrop(4, 5))


@case("normalization_adapted")
def _norm_adapted():
    L = _L()
    norm = L.Normalization()
    norm.adapt(np.arange(24, dtype="float32").reshape(6, 4))
    return seq((4,), norm, L.Dense(2))


@case("normalization_adapted_axis")
def _norm_adapted_axis():
    L = _L()
    norm = L.Normalization(axis=(1, 2))
    norm.adapt(np.arange(60, dtype="float32").reshape(5, 3, 4))
    return seq((3, 4), norm)


# embeddings and recurrent layers
_simple("embedding", (7,), lambda L: L.Embedding(50, 8), dtype="int32")
_simple("embedding_rnn", (7,), lambda L: [L.Embedding(30, 4), L.LSTM(5)], dtype="int32")
_simple("simple_rnn", (6, 3), lambda L: L.SimpleRNN(4))
_simple("simple_rnn_seq_nobias", (6, 3), lambda L: L.SimpleRNN(4, return_sequences=True, use_bias=False))
_simple("lstm", (6, 3), lambda L: L.LSTM(5))
_simple("lstm_seq_none_steps", (None, 3), lambda L: L.LSTM(5, return_sequences=True))
_simple("lstm_nobias", (6, 3), lambda L: L.LSTM(5, use_bias=False))
_simple("gru_reset_after", (6, 3), lambda L: L.GRU(5))
_simple("gru_reset_before", (6, 3), lambda L: L.GRU(5, reset_after=False, return_sequences=True))
_simple("gru_nobias", (6, 3), lambda L: L.GRU(5, use_bias=False))
_simple("bi_lstm_concat", (6, 3), lambda L: L.Bidirectional(L.LSTM(4)))
_simple("bi_gru_sum_seq", (6, 3), lambda L: L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="sum"))
_simple("bi_rnn_mul", (6, 3), lambda L: L.Bidirectional(L.SimpleRNN(4), merge_mode="mul"))
_simple("bi_lstm_ave_seq", (6, 3), lambda L: L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="ave"))
_simple("bi_gru_reset_before", (6, 3), lambda L: L.Bidirectional(L.GRU(4, reset_after=False)))


def _state_case(name, make):
    @case(name)
    def build():
        import keras

        x = keras.Input((6, 3))
        outs = make(_L())(x)
        return fn_model(x, list(outs))


_state_case("lstm_return_state", lambda L: L.LSTM(5, return_state=True))
_state_case("lstm_return_state_seq", lambda L: L.LSTM(5, return_state=True, return_sequences=True))
_state_case("gru_return_state", lambda L: L.GRU(5, return_state=True))
_state_case("simple_rnn_return_state", lambda L: L.SimpleRNN(5, return_state=True, return_sequences=True))
_state_case("bi_lstm_return_state", lambda L: L.Bidirectional(L.LSTM(4, return_state=True)))
_state_case("bi_gru_return_state_sum", lambda L: L.Bidirectional(L.GRU(4, return_state=True, return_sequences=True), merge_mode="sum"))

_simple("time_distributed_dense", (5, 6), lambda L: L.TimeDistributed(L.Dense(3)))
_simple("time_distributed_conv2d", (3, 8, 8, 2), lambda L: [L.TimeDistributed(L.Conv2D(4, 3, strides=2, padding="same")),
                                                            L.TimeDistributed(L.Flatten())])


# attention
def _mha_case(name, q_shape, v_shape=None, k_shape=None, scores=False, **kw):
    @case(name)
    def build():
        import keras

        L = _L()
        q = keras.Input(q_shape)
        ins = [q]
        v = k = None
        if v_shape is not None:
            v = keras.Input(v_shape)
            ins.append(v)
        if k_shape is not None:
            k = keras.Input(k_shape)
            ins.append(k)
        mha = L.MultiHeadAttention(**kw)
        out = mha(q, v if v is not None else q, key=k, return_attention_scores=scores)
        model = fn_model(ins, list(out) if scores else out)
        if not scores:
            return model
        # Keras' symbolic score shape uses the query length twice, (B, H, Tq, Tq);
        # the computed scores are (B, H, Tq, Tk): take the truth from a real call
        real = model([np.zeros((1, *i.shape[1:]), "float32") for i in ins])
        return model, {mha.name: [(None, *r.shape[1:]) for r in real]}


_mha_case("mha_self", (6, 8), num_heads=2, key_dim=4)
_mha_case("mha_cross", (6, 8), (9, 5), num_heads=2, key_dim=3)
_mha_case("mha_cross_key", (6, 8), (9, 5), (9, 7), num_heads=3, key_dim=2, value_dim=4)
_mha_case("mha_value_dim_output_shape", (6, 8), num_heads=2, key_dim=4, value_dim=3, output_shape=10)
_mha_case("mha_no_bias", (6, 8), (4, 8), num_heads=2, key_dim=4, use_bias=False)
_mha_case("mha_scores", (6, 8), (4, 5), num_heads=2, key_dim=3, scores=True)

# random augmentation
_simple("random_flip_rotation", (8, 8, 3), lambda L: [L.RandomFlip(), L.RandomRotation(0.1)])
_simple("random_zoom_translation", (8, 8, 3), lambda L: [L.RandomZoom(0.1), L.RandomTranslation(0.1, 0.1)])
_simple("random_contrast", (8, 8, 3), lambda L: L.RandomContrast(0.2))
# Keras cannot write RandomBrightness to .h5 (TypeError: cannot pickle 'module' object)
_simple("random_brightness", (8, 8, 3), lambda L: L.RandomBrightness(0.2), saved=("keras",))
_simple("random_crop", (10, 12, 3), lambda L: [L.RandomCrop(6, 7), L.Conv2D(2, 3)])


# channels_first models with layers that have no data_format: they act on the
# source layout's axes (the last source axis, not the canonical channels)
_simple("cf_conv_dense_4d", (3, 6, 6), lambda L: [L.Conv2D(4, 3, data_format="channels_first"), L.Dense(5)])
_simple("cf_conv1d_lstm", (3, 20), lambda L: [L.Conv1D(4, 3, data_format="channels_first"),
                                              L.LSTM(5, return_sequences=True), L.Dense(2)])
_simple("cf_conv1d_gap_keepdims", (3, 20), lambda L: [L.Conv1D(4, 3, data_format="channels_first"),
                                                      L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True)])
_simple("cf_reshape_dense", (3, 6, 6), lambda L: [L.Conv2D(4, 3, data_format="channels_first"), L.Reshape((4, 16)), L.Dense(3)])
_simple("cf_embedding_conv1d", (6,), lambda L: [L.Embedding(10, 8), L.Conv1D(4, 3, data_format="channels_first"),
                                                L.Flatten(), L.Dense(2)], dtype="int32")
_simple("cf_batchnorm_last_axis", (3, 6, 5), lambda L: [L.Conv2D(4, 1, data_format="channels_first"), L.BatchNormalization()])
_simple("cf_layernorm_softmax", (3, 6, 5), lambda L: [L.Conv2D(4, 1, data_format="channels_first"),
                                                      L.LayerNormalization(axis=[1, 2]), L.Softmax()])
_simple("cf_permute_bi_gru", (3, 20), lambda L: [L.Conv1D(4, 3, data_format="channels_first"), L.Permute((2, 1)),
                                                 L.Bidirectional(L.GRU(3, return_sequences=True)), L.Dense(2)])
_simple("cf_gap_repeat", (3, 6, 6), lambda L: [L.Conv2D(4, 3, data_format="channels_first"), L.GlobalAveragePooling2D(
    data_format="channels_first"), L.RepeatVector(5), L.Conv1D(2, 1, data_format="channels_first")])
_simple("cf_time_distributed_conv2d", (2, 3, 8, 8), lambda L: L.TimeDistributed(L.Conv2D(4, 3, data_format="channels_first")))

# mixed layouts: a layer left channels_last in a channels_first model pools (pads,
# upsamples) over the source axes 1.. as Keras does; UpSampling1D and Cropping1D
# have no data_format at all
_simple("mixed_cf_conv_cl_pool", (3, 8, 10), lambda L: [L.Conv2D(4, 3, data_format="channels_first"), L.MaxPooling2D(2),
                                                        L.ZeroPadding2D(((1, 0), (0, 2)))])
_simple("mixed_cf_conv1d_1d_ops", (3, 20), lambda L: [L.Conv1D(4, 3, data_format="channels_first"), L.UpSampling1D(2),
                                                      L.Cropping1D((1, 2)), L.ZeroPadding1D(1), L.MaxPooling1D(2),
                                                      L.GlobalAveragePooling1D()])
_simple("cf_1d_ops", (3, 20), lambda L: [L.Conv1D(4, 3, data_format="channels_first"),
                                         L.ZeroPadding1D(2, data_format="channels_first"),
                                         L.MaxPooling1D(2, data_format="channels_first"),
                                         L.SpatialDropout1D(0.1), L.Conv1DTranspose(2, 3, data_format="channels_first")])


@case("cf_mha_dot")
def _cf_mha():
    import keras

    L = _L()
    x = keras.Input((3, 10))
    h = L.Conv1D(4, 3, data_format="channels_first")(x)  # (None, 4, 8)
    a = L.MultiHeadAttention(2, 3)(h, h)
    d = L.Dot(axes=(1, 1))([a, h])  # (None, 8, 8)
    return fn_model(x, L.Conv1D(2, 1, data_format="channels_first")(d))


_state_case("bi_lstm_merge_none", lambda L: L.Bidirectional(L.LSTM(4), merge_mode=None))
_state_case("bi_lstm_merge_none_state", lambda L: L.Bidirectional(L.LSTM(4, return_state=True), merge_mode=None))


@case("input_batch_size")
def _input_batch_size():
    import keras

    x = keras.Input((4,), batch_size=2)
    return fn_model(x, _L().Dense(3)(x))


@case("normalization_adapted_axis_none")
def _norm_adapted_none():
    L = _L()
    norm = L.Normalization(axis=None)
    norm.adapt(np.arange(24, dtype="float32").reshape(6, 4))
    return seq((4,), norm, L.Dense(2))
_mha_case("mha_output_shape_tuple", (6, 8), num_heads=2, key_dim=4, output_shape=(2, 5))
_mha_case("mha_scores_self", (6, 8), num_heads=2, key_dim=3, scores=True)
_simple("conv2d_transpose_even_same_op", (5, 6, 3), lambda L: L.Conv2DTranspose(4, 4, strides=2, padding="same", output_padding=1))
_simple("conv1d_transpose_valid_op_dilated", (5, 3), lambda L: L.Conv1DTranspose(4, 3, strides=2, output_padding=1, dilation_rate=1))
_simple("rms_normalization", (4, 6), lambda L: L.RMSNormalization())


# ---------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------

def _truth(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return model.count_params(), trainable, model.count_params() - trainable


def _layer_shapes(model) -> dict:
    out = {}
    for layer in model.layers:
        tensors = layer.output
        tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
        out[layer.name] = [tuple(t.shape) for t in tensors]
    return out


@pytest.mark.parametrize("build, saved", CASES)
def test_layer_zoo(build, saved, tmp_path):
    model = build()
    model, true_shapes = model if isinstance(model, tuple) else (model, {})
    truth = _truth(model)
    shapes = {**_layer_shapes(model), **true_shapes}
    sources = [model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in saved:  # .keras first
            model.save(tmp_path / f"m.{fmt}")
            sources.append(tmp_path / f"m.{fmt}")
    for source in sources:
        g = load_graph(source)
        where = getattr(source, "name", "live")
        assert (g.total_params, g.trainable_params, g.non_trainable_params) == truth, where
        assert [g.display_shape(s) for s in g.input_shapes()] == [tuple(t.shape) for t in model.inputs], where
        for name, expected in shapes.items():
            got = [g.display_shape(s) for s in g[name].output_shapes]
            assert got == expected, f"{where}: {name} ({g[name].notes})"


# ---------------------------------------------------------------------------
# issue 12: convolutional LSTMs, attention without projections, custom layers
# ---------------------------------------------------------------------------

_simple("convlstm1d", (4, 10, 3), lambda L: L.ConvLSTM1D(5, 3))
_simple("convlstm2d_seq_same", (3, 8, 8, 2), lambda L: L.ConvLSTM2D(4, 3, padding="same", return_sequences=True))
_simple("convlstm2d_strides_nobias", (3, 9, 9, 2), lambda L: [L.ConvLSTM2D(4, (3, 2), strides=2, use_bias=False),
                                                               L.Flatten(), L.Dense(2)])
_simple("convlstm3d", (2, 5, 5, 4, 1), lambda L: L.ConvLSTM3D(2, 2))


@case("convlstm2d_return_state")
def _convlstm_state():
    import keras

    x = keras.Input((3, 7, 7, 2))
    return fn_model(x, list(_L().ConvLSTM2D(3, 3, return_state=True)(x)))


def _attention_case(name, cls, q=(6, 8), v=(9, 8), key=None, scores=False, **kw):
    @case(name)
    def build():
        import keras

        ins = [keras.Input(q), keras.Input(v)] + ([keras.Input(key)] if key else [])
        out = getattr(_L(), cls)(**kw)(ins, return_attention_scores=scores)
        return fn_model(ins, list(out) if scores else out)


_attention_case("attention_dot", "Attention")
_attention_case("attention_scale_key_scores", "Attention", key=(9, 8), scores=True, use_scale=True)
_attention_case("attention_concat", "Attention", score_mode="concat", use_scale=True)
_attention_case("additive_attention", "AdditiveAttention")
_attention_case("additive_attention_noscale_scores", "AdditiveAttention", v=(4, 8), use_scale=False, scores=True)


def _custom_layers():
    import keras

    @keras.saving.register_keras_serializable("modellint_zoo")
    class Counted(keras.layers.Layer):
        """A custom layer with a trainable kernel and a non-trainable counter."""

        def build(self, shape):
            self.kernel = self.add_weight(shape=(shape[-1], 4), name="kernel")
            self.count = self.add_weight(shape=(3,), name="count", trainable=False, initializer="zeros")

        def call(self, x):
            return keras.ops.matmul(x, self.kernel)

    return Counted


@case("custom_nontrainable_weight", saved=())  # files cannot say which weights train: see below
def _custom_nontrainable():
    import keras

    x = keras.Input((5, 6))
    return fn_model(x, _L().Dense(2)(_custom_layers()()(x)))


@pytest.mark.parametrize("fmt", SAVED)
def test_custom_layer_in_files(fmt, tmp_path):
    """A custom layer's weights in a file: the total is exact, a frozen layer's are all
    non-trainable, and the layers after it get their shapes back (.h5 as .keras) from the
    shapes their calls record."""
    import keras

    counted = _custom_layers()
    x = keras.Input((5, 6))
    frozen = counted(trainable=False, name="frozen")
    h = frozen(counted(name="counted")(x))
    model = fn_model(x, _L().Dense(2, name="head")(_L().Flatten(name="flat")(h)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / f"m.{fmt}")
    g = load_graph(tmp_path / f"m.{fmt}")
    assert g.total_params == model.count_params()
    assert g["frozen"].trainable_params == 0 and g["frozen"].params == 4 * 4 + 3
    assert any("does not record which of its weights train" in n for n in g["counted"].notes)
    for name in ("counted", "frozen", "flat", "head"):
        assert [g.display_shape(s) for s in g[name].output_shapes] == [tuple(model.get_layer(name).output.shape)], name
